/**
 * deploy/kubernetes: every manifest validates against the Kubernetes API schemas
 * (kubernetes-models), the kustomization lists them all, and what the issue asks of them holds:
 * probes, a disruption budget, a non-root read-only pod, a grace period above the drain timeout,
 * and a ConfigMap + Secret that load through the real config loader.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';

const DIR = path.resolve(import.meta.dirname, '../../deploy/kubernetes');

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [k: string]: unknown;
}

/** The kubernetes-models class for an apiVersion/kind, e.g. apps/v1 StatefulSet. */
async function modelFor(apiVersion: string, kind: string): Promise<new (data: unknown) => { validate(): void }> {
  const mod = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const model = mod[kind];
  if (!model) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return model;
}

async function loadManifests(): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()) {
    for (const doc of parseAllDocuments(await readFile(path.join(DIR, file), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const data = doc.toJS() as Manifest | null;
      if (data) out.push({ ...data, file });
    }
  }
  return out;
}

describe('Kubernetes manifests', () => {
  let manifests: Manifest[];
  const byKind = (kind: string, name: string) => {
    const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
    if (!m) throw new Error(`no ${kind} ${name}`);
    return m as Manifest & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  };

  beforeAll(async () => {
    manifests = await loadManifests();
  });

  it('every manifest validates against the Kubernetes schemas', async () => {
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      'ConfigMap/cachegate-config',
      'PodDisruptionBudget/cachegate',
      'Secret/cachegate-secrets',
      'Service/cachegate',
      'Service/cachegate-headless',
      'ServiceAccount/cachegate',
      'StatefulSet/cachegate',
    ]);
    for (const m of manifests) {
      const { file: _file, ...data } = m;
      const Model = await modelFor(m.apiVersion, m.kind);
      expect(() => new Model(data).validate(), `${m.file}: ${m.kind}/${m.metadata.name}`).not.toThrow();
    }
  });

  it('the validation rejects a broken manifest (so the check above means something)', async () => {
    const { file: _file, ...sts } = structuredClone(byKind('StatefulSet', 'cachegate'));
    delete sts.spec.selector;
    sts.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    const Model = await modelFor('apps/v1', 'StatefulSet');
    expect(() => new Model(sts).validate()).toThrow(/selector|containerPort/);
  });

  it('kustomization.yaml lists every manifest file', async () => {
    const kustomization = parseAllDocuments(await readFile(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual([...new Set(manifests.map((m) => m.file))].sort());
  });

  it('a StatefulSet with a cache volume claim, probes, resources and a locked-down pod', () => {
    const sts = byKind('StatefulSet', 'cachegate');
    expect(sts.spec.serviceName).toBe('cachegate-headless');
    const claim = sts.spec.volumeClaimTemplates[0];
    const pod = sts.spec.template.spec;
    const [c] = pod.containers;
    expect(c.volumeMounts).toContainEqual({ name: claim.metadata.name, mountPath: '/var/cache/cachegate' });
    expect(c.readinessProbe.httpGet.path).toBe('/ready');
    expect(c.livenessProbe.httpGet.path).toBe('/health');
    expect(c.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    const svc = byKind('Service', 'cachegate-headless');
    expect(svc.spec.clusterIP).toBe('None');
    expect(byKind('PodDisruptionBudget', 'cachegate').spec.selector).toEqual(sts.spec.selector);
  });

  describe('the ConfigMap and the Secret, merged as the pod merges them', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'cg-k8s-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('load through the real loader, and the grace period outlasts the drain', async () => {
      const sts = byKind('StatefulSet', 'cachegate');
      const pod = sts.spec.template.spec;
      const [c] = pod.containers;
      // Write each mounted file where the pod would see it (under a temp root).
      const files = new Map<string, string>();
      for (const mount of c.volumeMounts as { name: string; mountPath: string; subPath?: string }[]) {
        const vol = (pod.volumes as { name: string; configMap?: { name: string }; secret?: { secretName: string } }[]).find((v) => v.name === mount.name);
        if (vol?.configMap) {
          const cm = byKind('ConfigMap', vol.configMap.name);
          files.set(mount.mountPath, cm.data[mount.subPath!]);
        } else if (vol?.secret) {
          const secret = byKind('Secret', vol.secret.secretName);
          for (const [k, v] of Object.entries(secret.stringData as Record<string, string>)) files.set(`${mount.mountPath}/${k}`, v);
        }
      }
      const layers = [];
      const args = c.args as string[];
      for (let i = 0; i < args.length; i += 2) {
        expect(args[i]).toBe('--config');
        const target = args[i + 1]!;
        if (target === 'env') {
          layers.push({ kind: 'env' as const });
          continue;
        }
        const text = files.get(target);
        expect(text, `${target} is mounted`).toBeDefined();
        const local = path.join(dir, target.replaceAll('/', '_'));
        await writeFile(local, text!);
        layers.push({ kind: 'file' as const, path: local });
      }
      const env = Object.fromEntries((c.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
      const { config } = await loadConfig({ kind: 'layers', layers }, env);
      expect(config.auth.bearer_tokens.length).toBeGreaterThan(0);
      expect(config.cache.disk_path).toBe('/var/cache/cachegate');
      expect(config.listen.endsWith(':8080')).toBe(true);
      expect(c.ports[0].containerPort).toBe(8080);
      // Grace period > preStop pause + shutdown_timeout, or the kubelet kills a draining pod.
      const preStopSeconds = Number(c.lifecycle.preStop.exec.command[1]);
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.server.shutdown_timeout + preStopSeconds * 1000);
      // The disk tier fits in its claim.
      const claimGi = Number(/^(\d+)Gi$/.exec(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage)![1]);
      expect(config.cache.max_disk).toBeLessThan(claimGi * 2 ** 30);
    });
  });
});
