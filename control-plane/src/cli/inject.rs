//! `wardenctl inject -f FILE|-`: adds the Warden sidecar to Kubernetes workloads
//! (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, Pods; `List`s of them) in a
//! multi-document YAML, and prints the result. The sidecar goes in as a native sidecar
//! (an init container with `restartPolicy: Always`) with its flags, env, probes, token
//! secret, state volume and resources; nothing else is changed (other documents pass
//! through as they are, though YAML comments and formatting are not kept). Injecting twice
//! changes nothing.
//!
//! Kubernetes reads YAML 1.1, the YAML library here 1.2. Two differences would change a
//! manifest's meaning on the way through, so they are handled: a plain octal mode
//! (`defaultMode: 0644`) is read as the number Kubernetes sees (420), and a document
//! holding a string that YAML 1.1 reads as a boolean (`value: "on"`) is printed as JSON
//! (valid YAML, every string quoted) rather than as YAML that would drop the quotes.

use yaml_serde::{Mapping, Value};

use crate::cli::context::{Cli, Failure, Outcome, read_file};

/// The container's name, and how a second injection recognises the first.
const NAME: &str = "warden-sidecar";
const STATE_VOLUME: &str = "warden-state";
const TOKEN_VOLUME: &str = "warden-token";
const PROXY_PORT: u64 = 15001;
/// The admin port listens on every address (`--admin=0.0.0.0:15000`): the kubelet's
/// probes and Prometheus reach it at the pod address. That is safe because the sidecar
/// answers only `/healthz`, `/readyz` and `/metrics` to other addresses; `/config` and
/// `/limits/peek` answer loopback only (`kubectl port-forward` connects from inside the
/// pod), and the port bounds its connections and their time (see `warden_sidecar::admin`).
const ADMIN_PORT: u64 = 15000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest file, or - for stdin.
    #[arg(short = 'f', long = "filename")]
    file: String,
    /// The service whose policy the sidecar follows (default: each workload's name).
    #[arg(long)]
    service: Option<String>,
    /// The app's port (default: the first container's first containerPort, else 8080).
    #[arg(long)]
    upstream_port: Option<u16>,
    #[arg(long, default_value = concat!("ghcr.io/warden/warden-sidecar:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// The control plane as seen from the pods.
    #[arg(long = "control-plane", default_value = "http://warden-control-plane.warden:7070")]
    control_plane: String,
    /// The Secret (in the workload's namespace) whose `token` key is the sidecar token.
    #[arg(long, default_value = "warden-sidecar-token")]
    token_secret: String,
}

pub fn run(_cli: &Cli, a: &Args) -> Outcome {
    let text = read_file(&a.file)?;
    let out = inject(&text, a).map_err(|e| Failure::Refused(format!("{}: {e}", a.file)))?;
    print!("{out}");
    Ok(())
}

/// Injects into every workload of a multi-document YAML text.
pub fn inject(text: &str, a: &Args) -> Result<String, String> {
    let mut docs = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let v = <Value as serde::Deserialize>::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        docs.push(v);
    }
    let mut out = String::new();
    for (i, mut doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        // `<<: *anchor` merges first, or a written key would hide the merged one.
        doc.apply_merge().map_err(|e| format!("document {}: {e}", i + 1))?;
        inject_doc(&mut doc, a).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        if has_yaml11_bool_string(&doc) {
            out.push_str(&serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?);
            out.push('\n');
        } else {
            out.push_str(&yaml_serde::to_string(&doc).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

/// Strings YAML 1.1 (and so Kubernetes) reads as booleans when unquoted.
const YAML11_BOOLS: &[&str] =
    &["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"];

fn has_yaml11_bool_string(v: &Value) -> bool {
    match v {
        Value::String(s) => YAML11_BOOLS.contains(&s.as_str()),
        Value::Sequence(items) => items.iter().any(has_yaml11_bool_string),
        Value::Mapping(m) => m.iter().any(|(k, v)| has_yaml11_bool_string(k) || has_yaml11_bool_string(v)),
        Value::Tagged(t) => has_yaml11_bool_string(&t.value),
        _ => false,
    }
}

/// `defaultMode: 0644` (and `mode:`) in a pod's volumes as Kubernetes reads it: octal,
/// so 420. Only there: elsewhere (a ConfigMap's data) "0644" is just text.
fn octal_modes(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let is_mode = matches!(k.as_str(), Some("defaultMode" | "mode"));
                if is_mode
                    && let Value::String(s) = val
                    && s.len() > 1
                    && s.starts_with('0')
                    && let Ok(n) = u64::from_str_radix(s, 8)
                {
                    *val = Value::Number(n.into());
                    continue;
                }
                octal_modes(val);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

fn inject_doc(doc: &mut Value, a: &Args) -> Result<(), String> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let spec = match kind.as_str() {
        "List" => {
            let items = doc.get_mut("items").and_then(Value::as_sequence_mut).ok_or("a List without items")?;
            for item in items {
                inject_doc(item, a)?;
            }
            return Ok(());
        }
        "Pod" => doc.get_mut("spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            doc.get_mut("spec").and_then(|s| s.get_mut("template")).and_then(|t| t.get_mut("spec"))
        }
        _ => return Ok(()),
    };
    let spec = spec.and_then(Value::as_mapping_mut).ok_or_else(|| format!("{kind} '{name}' has no pod spec"))?;
    let service = a.service.clone().unwrap_or_else(|| name.clone());
    if service.is_empty() {
        return Err(format!("{kind} has no metadata.name: give --service"));
    }
    inject_pod(spec, &kind, &name, &service, a)
}

fn inject_pod(spec: &mut Mapping, kind: &str, name: &str, service: &str, a: &Args) -> Result<(), String> {
    if let Some(volumes) = spec.get_mut("volumes") {
        octal_modes(volumes);
    }
    let containers = spec
        .get("containers")
        .and_then(Value::as_sequence)
        .ok_or_else(|| format!("{kind} '{name}' has no containers"))?;
    let init = spec.get("initContainers").and_then(Value::as_sequence).cloned().unwrap_or_default();
    if init.iter().any(|c| c.get("name").and_then(Value::as_str) == Some(NAME)) {
        return Ok(());
    }
    // Ports the sidecar needs must be free in the pod's network namespace.
    for c in containers.iter().chain(&init) {
        for p in c.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            let port = p.get("containerPort").and_then(Value::as_u64);
            if port == Some(PROXY_PORT) || port == Some(ADMIN_PORT) {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
                return Err(format!("{kind} '{name}': container '{cname}' already uses port {}", port.unwrap_or(0)));
            }
        }
    }
    let upstream = match a.upstream_port {
        Some(p) => u64::from(p),
        None => containers
            .first()
            .and_then(|c| c.get("ports"))
            .and_then(Value::as_sequence)
            .and_then(|ps| ps.first())
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64)
            .unwrap_or(8080),
    };
    let volumes = spec.get("volumes").and_then(Value::as_sequence).cloned().unwrap_or_default();
    for v in &volumes {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if vname == STATE_VOLUME || vname == TOKEN_VOLUME {
            return Err(format!("{kind} '{name}' already has a volume named '{vname}'"));
        }
    }
    let sidecar = sidecar(service, upstream, a)?;
    let mut init = init;
    init.push(sidecar);
    spec.insert("initContainers".into(), Value::Sequence(init));
    let mut volumes = volumes;
    volumes.push(yaml(&format!("{{ name: {STATE_VOLUME}, emptyDir: {{}} }}"))?);
    volumes.push(yaml(&format!(
        "{{ name: {TOKEN_VOLUME}, secret: {{ secretName: {}, defaultMode: 292 }} }}",
        a.token_secret
    ))?);
    spec.insert("volumes".into(), Value::Sequence(volumes));
    Ok(())
}

fn yaml(s: &str) -> Result<Value, String> {
    yaml_serde::from_str(s).map_err(|e| e.to_string())
}

/// The sidecar container.
fn sidecar(service: &str, upstream: u64, a: &Args) -> Result<Value, String> {
    let mut c: Value = yaml(&format!(
        r#"
name: {NAME}
image: {image}
restartPolicy: Always
args:
  - --service={service}
  - --control-plane={cp}
  - --listen=0.0.0.0:{PROXY_PORT}
  - --admin=0.0.0.0:{ADMIN_PORT}
  - --upstream=127.0.0.1:{upstream}
  - --state-dir=/var/lib/warden
  - --token-file=/etc/warden/token/token
  - --drain-timeout=25s
env:
  - name: WARDEN_INSTANCE
    valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }}
ports:
  - {{ name: warden, containerPort: {PROXY_PORT} }}
  - {{ name: warden-admin, containerPort: {ADMIN_PORT} }}
startupProbe:
  httpGet: {{ path: /readyz, port: {ADMIN_PORT} }}
  periodSeconds: 1
  failureThreshold: 60
readinessProbe:
  httpGet: {{ path: /readyz, port: {ADMIN_PORT} }}
  periodSeconds: 5
livenessProbe:
  httpGet: {{ path: /healthz, port: {ADMIN_PORT} }}
  periodSeconds: 10
resources:
  requests: {{ cpu: 50m, memory: 32Mi }}
  limits: {{ cpu: "1", memory: 128Mi }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {{ drop: [ALL] }}
volumeMounts:
  - {{ name: {STATE_VOLUME}, mountPath: /var/lib/warden }}
  - {{ name: {TOKEN_VOLUME}, mountPath: /etc/warden/token, readOnly: true }}
"#,
        image = a.image,
        cp = a.control_plane,
    ))?;
    // Values from the command line are set as strings, never spliced into YAML syntax.
    if let Some(m) = c.as_mapping_mut() {
        m.insert("image".into(), Value::String(a.image.clone()));
    }
    if let Some(args) = c.get_mut("args").and_then(Value::as_sequence_mut) {
        args[0] = Value::String(format!("--service={service}"));
        args[1] = Value::String(format!("--control-plane={}", a.control_plane));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            file: "-".into(),
            service: None,
            upstream_port: None,
            image: "ghcr.io/warden/warden-sidecar:test".into(),
            control_plane: "http://warden-control-plane.warden:7070".into(),
            token_secret: "warden-sidecar-token".into(),
        }
    }

    const MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata: { name: orders, labels: { team: a } }
spec:
  replicas: 3
  selector: { matchLabels: { app: orders } }
  template:
    metadata: { labels: { app: orders } }
    spec:
      initContainers:
        - { name: migrate, image: orders:1, command: [migrate] }
      containers:
        - name: app
          image: orders:1
          ports: [{ containerPort: 9000 }]
        - { name: worker, image: orders-worker:1 }
      volumes:
        - { name: cache, emptyDir: {} }
---
apiVersion: v1
kind: Service
metadata: { name: orders }
spec: { ports: [{ port: 80, targetPort: 9000 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: one-off }
spec:
  containers: [{ name: c, image: x }]
";

    fn pod_spec(doc: &Value) -> &Value {
        match doc.get("kind").and_then(Value::as_str) {
            Some("Pod") => &doc["spec"],
            _ => &doc["spec"]["template"]["spec"],
        }
    }

    #[test]
    fn injects_a_native_sidecar_and_changes_nothing_else() {
        let out = inject(MANIFEST, &args()).unwrap();
        let docs: Vec<Value> = yaml_serde::Deserializer::from_str(&out)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .collect();
        let before: Vec<Value> = yaml_serde::Deserializer::from_str(MANIFEST)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3);
        let spec = pod_spec(&docs[0]);
        let init = spec["initContainers"].as_sequence().unwrap();
        assert_eq!(init.len(), 2);
        assert_eq!(
            init[0], before[0]["spec"]["template"]["spec"]["initContainers"][0],
            "existing init containers untouched"
        );
        let sc = &init[1];
        assert_eq!(sc["restartPolicy"], "Always");
        let flags: Vec<&str> = sc["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(flags.contains(&"--service=orders") && flags.contains(&"--upstream=127.0.0.1:9000"), "{flags:?}");
        assert_eq!(spec["containers"], before[0]["spec"]["template"]["spec"]["containers"], "app containers untouched");
        let vols: Vec<&str> =
            spec["volumes"].as_sequence().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(vols, ["cache", STATE_VOLUME, TOKEN_VOLUME]);
        assert_eq!(docs[1], before[1], "a Service passes through");
        assert_eq!(docs[0]["spec"]["replicas"], 3);
        assert_eq!(pod_spec(&docs[2])["initContainers"][0]["name"], NAME, "a bare Pod too");

        assert_eq!(inject(&out, &args()).unwrap(), out, "injecting twice changes nothing");
    }

    #[test]
    fn keeps_what_kubernetes_reads_the_same() {
        let m = "kind: Pod\nmetadata: { name: p }\nspec:\n  containers: [{ name: c, image: x, env: [{ name: A, value: \"on\" }] }]\n  volumes: [{ name: s, secret: { secretName: s, defaultMode: 0644 } }]\n";
        let out = inject(m, &args()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).expect("printed as JSON");
        assert_eq!(v["spec"]["containers"][0]["env"][0]["value"], "on", "still a string");
        assert_eq!(v["spec"]["volumes"][0]["secret"]["defaultMode"], 420, "0644 is octal to Kubernetes");
        let plain = inject(&m.replace("\"on\"", "\"1\""), &args()).unwrap();
        assert!(plain.contains("defaultMode: 420") && plain.contains("value: '1'"), "{plain}");
    }

    #[test]
    fn merged_keys_stay_and_other_documents_keep_their_text() {
        let m = "kind: ConfigMap\nmetadata: { name: c }\ndata: { mode: \"0755\" }\n---\nkind: Pod\nmetadata: { name: p }\nspec:\n  <<: { initContainers: [{ name: migrate, image: m }] }\n  containers: [{ name: c, image: x }]\n";
        let out = inject(m, &args()).unwrap();
        assert!(out.contains("mode: '0755'"), "a ConfigMap's data is not a file mode: {out}");
        assert!(out.contains("name: migrate"), "the merged init container is kept: {out}");
    }

    #[test]
    fn says_what_it_cannot_handle() {
        let bad = |m: &str| inject(m, &args()).unwrap_err();
        assert!(bad("kind: Deployment\nmetadata: { name: x }\nspec: {}\n").contains("Deployment 'x' has no pod spec"));
        assert!(bad("kind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: c, ports: [{ containerPort: 15001 }] }] }\n")
            .contains("container 'c' already uses port 15001"));
        assert!(bad("kind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: c }], volumes: [{ name: warden-state }] }\n")
            .contains("already has a volume named 'warden-state'"));
        assert!(bad("a: [").contains("document 1"));
    }
}
