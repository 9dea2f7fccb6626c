/**
 * deploy/kubernetes/haproxy: the HAProxy ConfigMap, Deployment and Service validate against the
 * Kubernetes API schemas (kubernetes-models); the kustomization lists them; the ConfigMap's
 * haproxy.cfg is deploy/haproxy/haproxy.cfg line for line except for the resolvers section and
 * the servers, which are the StatefulSet's stable pod names; and HAProxy itself accepts it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const REPO = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(REPO, 'deploy/kubernetes/haproxy');
const SHIPPED_CFG = path.join(REPO, 'deploy/haproxy/haproxy.cfg');
/** The StatefulSet of the packaging work, when it is in this tree. */
const STATEFULSET = path.join(REPO, 'deploy/kubernetes/statefulset.yaml');

type Model = new (data: unknown) => { validate(): void };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Manifest = { file: string; apiVersion: string; kind: string; metadata: { name: string } } & Record<string, any>;

async function modelFor(apiVersion: string, kind: string): Promise<Model> {
  const mod = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, Model>;
  const model = mod[kind];
  if (!model) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return model;
}

async function yamlDocs(file: string): Promise<Record<string, unknown>[]> {
  return parseAllDocuments(await readFile(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
      return d.toJS() as Record<string, unknown> | null;
    })
    .filter((d): d is Record<string, unknown> => d !== null);
}

/** Config lines that matter: no comments, no blank lines, whitespace squeezed. */
function significant(cfg: string): string[] {
  return cfg
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' ').trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

describe('Kubernetes: HAProxy in front of the StatefulSet', () => {
  let manifests: Manifest[];
  const byKind = (kind: string) => {
    const m = manifests.find((x) => x.kind === kind);
    if (!m) throw new Error(`no ${kind}`);
    return m;
  };
  const cfg = () => byKind('ConfigMap').data['haproxy.cfg'] as string;

  beforeAll(async () => {
    manifests = [];
    for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
      for (const doc of await yamlDocs(path.join(DIR, file))) manifests.push({ ...(doc as Manifest), file });
    }
  });

  it('every manifest validates against the Kubernetes schemas', async () => {
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      'ConfigMap/cachegate-haproxy',
      'Deployment/cachegate-haproxy',
      'Service/cachegate-haproxy',
    ]);
    for (const { file, ...data } of manifests) {
      const Model = await modelFor(data.apiVersion, data.kind);
      expect(() => new Model(data).validate(), `${file}: ${data.kind}`).not.toThrow();
    }
  });

  it('the validation rejects a broken Deployment (so the check above means something)', async () => {
    const { file: _file, ...dep } = structuredClone(byKind('Deployment'));
    delete dep.spec.selector;
    dep.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    const Model = await modelFor('apps/v1', 'Deployment');
    expect(() => new Model(dep).validate()).toThrow(/selector|containerPort/);
  });

  it('kustomization.yaml lists every manifest file', async () => {
    const [k] = await yamlDocs(path.join(DIR, 'kustomization.yaml'));
    expect([...(k as { resources: string[] }).resources].sort()).toEqual([...new Set(manifests.map((m) => m.file))].sort());
  });

  it('wires the config, the namespace and the socket folder into the pod, and the Service to it', () => {
    const dep = byKind('Deployment');
    const pod = dep.spec.template.spec;
    const [c] = pod.containers;
    const mount = c.volumeMounts.find((m: { name: string }) => m.name === 'config');
    expect(c.args).toContain(mount.mountPath);
    expect(pod.volumes.find((v: { name: string }) => v.name === 'config').configMap.name).toBe(byKind('ConfigMap').metadata.name);
    expect(c.env).toContainEqual({ name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    // The stats socket lives in a writable emptyDir (the root filesystem is read-only).
    const socketDir = path.dirname(/stats socket (\S+)/.exec(cfg())![1]!);
    expect(c.volumeMounts).toContainEqual({ name: 'run', mountPath: socketDir });
    expect(pod.volumes).toContainEqual({ name: 'run', emptyDir: {} });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    const bindPort = Number(/bind :(\d+)/.exec(cfg())![1]);
    expect(c.ports).toContainEqual({ name: 'http', containerPort: bindPort, protocol: 'TCP' });
    const svc = byKind('Service');
    expect(svc.spec.selector).toEqual(dep.spec.selector.matchLabels);
    expect(svc.spec.ports[0].targetPort).toBe('http');
  });

  it('is the shipped haproxy.cfg, with only a resolvers section and the pods as servers', async () => {
    const shipped = significant(await readFile(SHIPPED_CFG, 'utf8'));
    const k8s = significant(cfg());
    const isServer = (l: string) => l.startsWith('server ');
    const resolvers = k8s.slice(k8s.indexOf('resolvers kube'), k8s.indexOf('frontend cachegate_in'));
    expect(resolvers[0]).toBe('resolvers kube');
    expect(resolvers).toContain('parse-resolv-conf');
    expect(k8s.filter((l) => !isServer(l) && !resolvers.includes(l))).toEqual(shipped.filter((l) => !isServer(l)));

    // The same ids as the shipped file, each on a stable pod name of the headless Service.
    const servers = k8s.filter(isServer).map((l) => l.split(' '));
    expect(servers.map((s) => s[1])).toEqual(shipped.filter(isServer).map((l) => l.split(' ')[1]));
    servers.forEach((s, i) => {
      expect(s[2]).toBe(`"cachegate-${i}.cachegate-headless.\${NAMESPACE}.svc.cluster.local:8080"`);
      expect(s.slice(3, 5)).toEqual(['id', String(i + 1)]);
      expect(s).toContain('resolvers');
    });
  });

  it('matches the StatefulSet: its headless Service, port and replica count', async (ctx) => {
    const sts = (await yamlDocs(STATEFULSET).catch(() => [])).find((d) => d.kind === 'StatefulSet') as Manifest | undefined;
    if (!sts) {
      ctx.skip(`${path.relative(REPO, STATEFULSET)} is not in this tree (the packaging work adds it)`);
      return;
    }
    expect(sts.metadata.name).toBe('cachegate');
    expect(sts.spec.serviceName).toBe('cachegate-headless');
    expect(sts.spec.template.spec.containers[0].ports).toContainEqual(expect.objectContaining({ containerPort: 8080 }));
    const servers = significant(cfg()).filter((l) => l.startsWith('server '));
    expect(servers.length).toBeGreaterThanOrEqual(sts.spec.replicas);
  });

  describe('HAProxy accepts it', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'cg-k8s-haproxy-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('haproxy -c passes on the ConfigMap config', async (ctx) => {
      if (spawnSync('haproxy', ['-v']).status !== 0) {
        ctx.skip('haproxy is not installed (.ci/run installs Debian’s)');
        return;
      }
      // No name lookups from a test: init-addr none (the servers start down) and a local socket.
      const text = cfg()
        .replace(/stats socket \S+/, `stats socket ${path.join(dir, 'admin.sock')}`)
        .replaceAll('init-addr last,libc,none', 'init-addr none');
      const file = path.join(dir, 'haproxy.cfg');
      await writeFile(file, text);
      const r = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', env: { ...process.env, NAMESPACE: 'cachegate-test' } });
      expect(r.status, r.stderr + r.stdout).toBe(0);
    });
  });
});
