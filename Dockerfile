# cachegate: a read/write caching gateway for object storage.
#   docker build -t cachegate .
#   docker run -p 8080:8080 -e CACHEGATE__AUTH__BEARER_TOKEN=… -e CACHEGATE__STORES__… cachegate
# Runs as uid 10001 (as cachegate does), works with --read-only, drains on `docker stop`.

# Production dependencies only, in their own stage: the runtime image never sees a dev dependency.
# No install scripts: `prepare` would build before the sources are here (and no dependency needs one).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Everything (TypeScript) to compile src/ into dist/.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The disk tier's home; owned by the runtime user so a fresh named volume is writable.
RUN mkdir -p /var/cache/cachegate && chown 10001:10001 /var/cache/cachegate
VOLUME ["/var/cache/cachegate"]
USER 10001:10001
EXPOSE 8080
# Liveness only: /health never asks the stores. The port follows CACHEGATE__LISTEN when set.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.CACHEGATE__LISTEN||':8080').split(':').pop();fetch('http://127.0.0.1:'+p+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/main.js"]
CMD ["--config", "env"]
