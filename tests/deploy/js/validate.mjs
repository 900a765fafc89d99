// Validates Kubernetes custom resources against the CRD schemas that @kubernetes-models ships.
// Input (stdin): a JSON array of manifests. Output (stdout): a JSON array, one entry per manifest,
// {kind, name, status: "valid" | "invalid" | "unsupported", error}. One node process checks them
// all, so the pytest side pays node's start-up once.
import { readFileSync } from "node:fs";

// apiVersion group -> the package that carries its models (the folder layout is group/version/Kind).
const PACKAGES = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "networking.istio.io": "@kubernetes-models/istio",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = PACKAGES[group];
  if (!pkg || !/^[A-Za-z0-9]+$/.test(kind) || !/^v[a-z0-9]+$/.test(version)) return null;
  try {
    const module = await import(`${pkg}/${group}/${version}/${kind}`);
    return module[kind] ?? null;
  } catch (error) {
    if (error.code === "ERR_MODULE_NOT_FOUND") return null;
    throw error;
  }
}

const manifests = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const manifest of manifests) {
  const entry = { kind: manifest.kind, name: manifest.metadata?.name ?? null, error: null };
  const Model = await modelFor(String(manifest.apiVersion ?? ""), String(manifest.kind ?? ""));
  if (Model === null) {
    entry.status = "unsupported";
  } else {
    try {
      new Model(manifest).validate();
      entry.status = "valid";
    } catch (error) {
      entry.status = "invalid";
      entry.error = error.message;
    }
  }
  results.push(entry);
}
process.stdout.write(JSON.stringify(results));
