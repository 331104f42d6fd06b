//! `volley k8s SCRIPT --agents N --image IMAGE`: the Kubernetes manifests of a
//! distributed run. Kubernetes is the engine: a Secret holds the token; a ConfigMap
//! holds the script, its modules and data files; the agents are an Indexed Job (its
//! completion index is the agent's segment) behind a headless Service that gives each
//! pod a stable name; the coordinator is a Job that dials them, with a Service in front
//! of its dashboard. Pure: from a bundle and options to a list of objects.

use super::bundle::BundleFile;
use serde_json::{Value, json};

/// Port agents listen on.
pub const AGENT_PORT: u16 = 7700;
/// Port of the coordinator's dashboard.
pub const DASHBOARD_PORT: u16 = 6565;
/// ConfigMaps hold at most 1 MiB.
const MAX_CONFIGMAP: usize = 1024 * 1024 - 16 * 1024;

/// What the manifests are made from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The script's file name inside its directory.
    pub main: String,
    /// The bundle (directory 0 is the script's; the last other is `stdlib/`).
    pub dirs: Vec<Vec<BundleFile>>,
    /// Agents (segments).
    pub agents: u32,
    /// The container image with volley in it.
    pub image: String,
    /// Namespace of every object.
    pub namespace: String,
    /// Prefix of every object's name.
    pub name: String,
    /// The shared token.
    pub token: String,
    /// CPU request and limit of each agent (`1`, `500m`).
    pub agent_cpu: String,
    /// Memory request and limit of each agent (`1Gi`).
    pub agent_memory: String,
    /// Extra `volley run` arguments for the coordinator (`--out json=...`).
    pub run_args: Vec<String>,
    /// Seconds the coordinator's pod stays up after the run, for `kubectl cp`.
    pub keep_s: u64,
    /// Seconds after which Kubernetes stops both Jobs whatever happens
    /// (`activeDeadlineSeconds`): agents waiting for a coordinator that never came.
    pub deadline_s: u64,
}

/// A manifest that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K8sError {
    /// The files do not fit a ConfigMap.
    #[error(
        "the script, its modules and data files take {size} bytes, more than a ConfigMap holds (1 MiB); hint: keep large data files out of the script's directory and read them from a volume"
    )]
    TooLarge {
        /// Their size.
        size: usize,
    },
    /// A name Kubernetes would refuse.
    #[error(
        "{what} {value:?} is not a valid Kubernetes name; hint: lowercase letters, digits and '-', starting with a letter, at most {max} characters"
    )]
    BadName {
        /// Which option.
        what: &'static str,
        /// Its value.
        value: String,
        /// The longest allowed.
        max: usize,
    },
    /// Zero agents.
    #[error("--agents must be at least 1")]
    NoAgents,
    /// A run argument `volley k8s` sets itself.
    #[error(
        "{flag} is set by volley k8s (the coordinator dials the agents' pods); hint: leave it out of the arguments after --"
    )]
    Reserved {
        /// The flag.
        flag: String,
    },
}

/// Flags of `volley run` the manifests set themselves.
const RESERVED: [&str; 6] = ["--agent", "--local-agents", "--agent-wait", "--token", "--dashboard", "--workers"];

fn dns_label(what: &'static str, value: &str, max: usize) -> Result<(), K8sError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok { Ok(()) } else { Err(K8sError::BadName { what, value: value.to_string(), max }) }
}

/// The directory a bundle directory is mounted as: the script's is `d0`; the last one
/// (`stdlib/`, found by walking up from the script) is `stdlib`; others are given by
/// `VOLLEY_STDLIB`.
fn dir_name(i: usize, count: usize) -> String {
    if i > 0 && i == count - 1 { "stdlib".into() } else { format!("d{i}") }
}

/// Where the ConfigMap is mounted.
const MOUNT: &str = "/volley/script";

impl Manifest {
    /// Every object, in the order to apply them.
    pub fn objects(&self) -> Result<Vec<Value>, K8sError> {
        if self.agents == 0 {
            return Err(K8sError::NoAgents);
        }
        dns_label("--name", &self.name, 40)?;
        if let Some(flag) = self.run_args.iter().find_map(|a| {
            let name = a.split('=').next().unwrap_or(a);
            RESERVED.iter().find(|r| **r == name).map(|r| r.to_string())
        }) {
            return Err(K8sError::Reserved { flag });
        }
        dns_label("--namespace", &self.namespace, 63)?;
        let n = &self.name;
        let ns = &self.namespace;
        let labels = |component: &str| json!({ "app.kubernetes.io/name": "volley", "app.kubernetes.io/instance": n, "app.kubernetes.io/component": component });
        let token_env = json!({ "name": "VOLLEY_TOKEN", "valueFrom": { "secretKeyRef": { "name": format!("{n}-token"), "key": "token" } } });

        let (data, binary, items, size) = self.files();
        if size > MAX_CONFIGMAP {
            return Err(K8sError::TooLarge { size });
        }
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{n}-token"), "namespace": ns, "labels": labels("token") },
            "type": "Opaque",
            "stringData": { "token": self.token },
        });
        let config = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": format!("{n}-script"), "namespace": ns, "labels": labels("script") },
            "data": data, "binaryData": binary,
        });
        let agents_service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": format!("{n}-agents"), "namespace": ns, "labels": labels("agent") },
            "spec": {
                "clusterIP": "None",
                "selector": labels("agent"),
                "ports": [{ "name": "agent", "port": AGENT_PORT, "targetPort": AGENT_PORT }],
            },
        });
        let resources = json!({
            "requests": { "cpu": self.agent_cpu, "memory": self.agent_memory },
            "limits": { "cpu": self.agent_cpu, "memory": self.agent_memory },
        });
        let agents_job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": format!("{n}-agent"), "namespace": ns, "labels": labels("agent") },
            "spec": {
                "completionMode": "Indexed",
                "completions": self.agents,
                "parallelism": self.agents,
                "backoffLimit": 0,
                "activeDeadlineSeconds": self.deadline_s,
                "template": {
                    "metadata": { "labels": labels("agent") },
                    "spec": {
                        "subdomain": format!("{n}-agents"),
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "agent",
                            "image": self.image,
                            "args": ["agent", "--listen", format!("0.0.0.0:{AGENT_PORT}"), "--once"],
                            "env": [token_env],
                            "ports": [{ "name": "agent", "containerPort": AGENT_PORT }],
                            "resources": resources,
                        }],
                    },
                },
            },
        });
        let dashboard_service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": format!("{n}-coordinator"), "namespace": ns, "labels": labels("coordinator") },
            "spec": {
                "selector": labels("coordinator"),
                "ports": [{ "name": "dashboard", "port": DASHBOARD_PORT, "targetPort": DASHBOARD_PORT }],
            },
        });
        let mut run = vec![
            "volley".to_string(),
            "run".into(),
            format!("{MOUNT}/d0/{}", self.main),
            "--agent-wait".into(),
            "300s".into(),
            "--dashboard".into(),
            format!("0.0.0.0:{DASHBOARD_PORT}"),
        ];
        for i in 0..self.agents {
            run.push("--agent".into());
            run.push(format!("{n}-agent-{i}.{n}-agents.{ns}.svc:{AGENT_PORT}"));
        }
        run.extend(self.run_args.iter().cloned());
        let quoted: Vec<String> = run.iter().map(|a| shell_quote(a)).collect();
        let script = format!(
            "cd /volley/reports && {}; code=$?; echo \"volley: exit $code; reports in /volley/reports for {}s (kubectl cp)\"; sleep {}; exit $code",
            quoted.join(" "),
            self.keep_s,
            self.keep_s
        );
        let mut env = vec![token_env];
        if self.dirs.len() > 2 {
            env.push(json!({ "name": "VOLLEY_STDLIB", "value": format!("{MOUNT}/d1") }));
        }
        let coordinator = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": format!("{n}-coordinator"), "namespace": ns, "labels": labels("coordinator") },
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": self.deadline_s,
                "template": {
                    "metadata": { "labels": labels("coordinator") },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "coordinator",
                            "image": self.image,
                            "command": ["sh", "-c", script],
                            "env": env,
                            "ports": [{ "name": "dashboard", "containerPort": DASHBOARD_PORT }],
                            "resources": {
                                "requests": { "cpu": "500m", "memory": "512Mi" },
                                "limits": { "cpu": "1", "memory": "1Gi" },
                            },
                            "volumeMounts": [
                                { "name": "script", "mountPath": MOUNT, "readOnly": true },
                                { "name": "reports", "mountPath": "/volley/reports" },
                            ],
                        }],
                        "volumes": [
                            { "name": "script", "configMap": { "name": format!("{n}-script"), "items": items } },
                            { "name": "reports", "emptyDir": {} },
                        ],
                    },
                },
            },
        });
        Ok(vec![secret, config, agents_service, agents_job, dashboard_service, coordinator])
    }

    /// ConfigMap data (text), binaryData (base64), the volume's items, and the size.
    fn files(&self) -> (serde_json::Map<String, Value>, serde_json::Map<String, Value>, Vec<Value>, usize) {
        use base64::Engine as _;
        let (mut data, mut binary, mut items, mut size) =
            (serde_json::Map::new(), serde_json::Map::new(), Vec::new(), 0);
        let mut k = 0;
        for (i, files) in self.dirs.iter().enumerate() {
            for f in files {
                k += 1;
                // ConfigMap keys allow [-._a-zA-Z0-9]: the path lives in the item instead.
                let tail: String = f
                    .path
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') { c } else { '_' })
                    .collect();
                let key = format!(
                    "f{k}-{}",
                    tail.chars().rev().take(200).collect::<String>().chars().rev().collect::<String>()
                );
                let bytes = base64::engine::general_purpose::STANDARD.decode(&f.base64).unwrap_or_default();
                size += bytes.len() + key.len();
                match String::from_utf8(bytes) {
                    Ok(text) => data.insert(key.clone(), Value::String(text)),
                    Err(_) => binary.insert(key.clone(), Value::String(f.base64.clone())),
                };
                items.push(json!({ "key": key, "path": format!("{}/{}", dir_name(i, self.dirs.len()), f.path) }));
            }
        }
        (data, binary, items, size)
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The objects as one YAML stream (`---` between documents).
pub fn to_yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| serde_yaml_ng::to_string(o).unwrap_or_default()).collect::<Vec<_>>().join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn file(path: &str, text: &[u8]) -> BundleFile {
        BundleFile { path: path.into(), base64: base64::engine::general_purpose::STANDARD.encode(text) }
    }

    fn manifest() -> Manifest {
        Manifest {
            main: "load.rhai".into(),
            dirs: vec![
                vec![file("load.rhai", b"phase(\"x\", #{}, || 1);"), file("data/ids.bin", &[0, 159, 146, 150])],
                vec![file("config.rhai", b"fn f() {}")],
            ],
            agents: 3,
            image: "registry.example/volley:1".into(),
            namespace: "perf".into(),
            name: "volley".into(),
            token: "t0ken".into(),
            agent_cpu: "1".into(),
            agent_memory: "1Gi".into(),
            run_args: vec!["--out".into(), "json=run.json".into()],
            keep_s: 300,
            deadline_s: 21600,
        }
    }

    #[test]
    fn agents_are_an_indexed_job_that_the_coordinator_dials_by_name() {
        let objects = manifest().objects().unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Secret", "ConfigMap", "Service", "Job", "Service", "Job"]);
        let agents = &objects[3]["spec"];
        assert_eq!(agents["completionMode"], "Indexed");
        assert_eq!(agents["completions"], 3);
        assert_eq!(agents["template"]["spec"]["subdomain"], "volley-agents");
        let script = objects[5]["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
        for i in 0..3 {
            assert!(script.contains(&format!("--agent volley-agent-{i}.volley-agents.perf.svc:7700")), "{script}");
        }
        assert!(script.contains("/volley/script/d0/load.rhai") && script.contains("json=run.json"), "{script}");
        // The token is only in the Secret.
        let yaml = to_yaml(&objects);
        assert_eq!(yaml.matches("t0ken").count(), 1, "{yaml}");
        let config = &objects[1];
        assert!(config["binaryData"].as_object().unwrap().len() == 1, "binary data files stay binary");
        let items = objects[5]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"].as_array().unwrap();
        let paths: Vec<&str> = items.iter().map(|i| i["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["d0/load.rhai", "d0/data/ids.bin", "stdlib/config.rhai"]);
    }

    #[test]
    fn bad_names_and_sizes_are_refused_with_a_hint() {
        let mut m = manifest();
        m.name = "Volley_Run".into();
        assert!(m.objects().unwrap_err().to_string().contains("not a valid Kubernetes name; hint"));
        let mut m = manifest();
        m.dirs[0].push(file("big.csv", &vec![b'a'; 2 * 1024 * 1024]));
        assert!(matches!(m.objects(), Err(K8sError::TooLarge { .. })));
        let mut m = manifest();
        m.agents = 0;
        assert_eq!(m.objects().unwrap_err(), K8sError::NoAgents);
        for flag in ["--agent-wait", "--local-agents=2", "--dashboard"] {
            let mut m = manifest();
            m.run_args = vec![flag.into(), "10s".into()];
            let e = m.objects().unwrap_err().to_string();
            assert!(e.contains("is set by volley k8s"), "{e}");
        }
    }
}
