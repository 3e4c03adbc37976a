//! The dataflow started exactly the way the Helm chart's StatefulSet starts it: the chart is
//! rendered with `helm template` (2 processes × 1 worker), and each "pod" runs the rendered
//! container command (`sh -c` with the chart's script) with the environment the pod would get
//! (the rendered ConfigMap through `envFrom`, the database URL from the rendered Secret) and
//! the pod's `HOSTNAME` (`<statefulset>-<ordinal>`). The script writes the hostfile from the
//! headless Service's DNS names and takes the process index from the hostname, as in the
//! cluster. The two processes must store exactly what one process stores from the same chunks.
//!
//! What stands in for Kubernetes, and nothing else:
//! - DNS: each pod runs in its own mount namespace (`unshare -m`) whose `/etc/hosts` maps the
//!   pods' names (`hs-dataflow-<i>.hs-dataflow.default.svc`) to 127.0.0.2 and 127.0.0.3, the
//!   pods' own addresses;
//! - the pod network: a pod's wildcard address is its own, so the script's `0.0.0.0` (the
//!   metrics listener the probes use) becomes that pod's address;
//! - the image: `horsestream` is this build's binary on `PATH`, and the model directory and
//!   ONNX Runtime are this machine's.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The chart rendered with `values`, as JSON documents (one per manifest).
fn render(values: &[(&str, String)]) -> Vec<Value> {
    let helm = Path::new(&required_env("HORSESTREAM_HOME")).join("bin/helm");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/horsestream");
    let set = values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(&helm)
        .args(["template", "hs"])
        .arg(&chart)
        .args(["--namespace", "default", "--set", &set])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} (scripts/install-deps.sh builds it): {e}",
                helm.display()
            )
        });
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // YAML to JSON with the system Python's PyYAML (the chart checks use it too).
    let mut py = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, json, yaml; \
             print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(json.status.success(), "converting the rendered chart");
    serde_json::from_slice(&json.stdout).unwrap()
}

fn manifest<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"))
}

/// A pod's processes, killed (the whole `unshare` tree) and reaped when dropped.
struct Pod {
    name: String,
    child: Child,
    /// The pod's stdout and stderr, as `kubectl logs` would show them.
    log: std::path::PathBuf,
}

impl Pod {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM as the kubelet sends it, to the pod's process group (`unshare` and the
    /// dataflow the script `exec`s).
    fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn metrics_of(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn two_statefulset_pods_store_what_one_process_stores() {
    let (name, k) = ingested_sample("statefulset");
    let dir = tempfile::tempdir().unwrap();
    let store = |n: &str| {
        let url = format!("sqlite://{}", dir.path().join(n).display());
        register(&url, &name);
        url
    };

    // The reference: one process, as `horsestream dataflow` runs outside Kubernetes.
    let single = store("single.db");
    let mut args = vec![
        "dataflow".to_owned(),
        "--until-end".into(),
        "--workers".into(),
        "1".into(),
        "--database-url".into(),
        single.clone(),
        "--group-id".into(),
        format!("{name}-single"),
    ];
    args.extend(topic_args(&k));
    let out = horsestream(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", error_line(&out));
    let reference = stored(&single, &name);
    assert_eq!(reference.len(), 220, "every frame of the sample stored");

    // The chart, rendered for this machine's services.
    let pods_store = store("pods.db");
    let docs = render(&[
        ("kafka.brokers", k.brokers.clone()),
        ("kafka.chunksTopic", k.chunks_topic.clone()),
        ("kafka.eventsTopic", k.events_topic.clone()),
        ("database.url", pods_store.clone()),
        ("api.jwtSecret", "not-used-here".into()),
        ("dataflow.processes", "2".into()),
        ("dataflow.workersPerProcess", "1".into()),
        ("dataflow.groupId", format!("{name}-pods")),
        // Ports no other process of this machine holds (a pod's ports are its own in a cluster).
        ("dataflow.timelyPort", free_port().to_string()),
        ("dataflow.metricsPort", free_port().to_string()),
        ("models.mountPath", required_env("HORSESTREAM_MODEL_DIR")),
        ("logLevel", "error".into()),
    ]);
    let sts = manifest(&docs, "StatefulSet", "hs-dataflow");
    assert_eq!(sts["spec"]["replicas"], 2);
    let service = sts["spec"]["serviceName"].as_str().unwrap();
    assert_eq!(
        manifest(&docs, "Service", service)["spec"]["clusterIP"],
        "None",
        "the pods' names come from a headless Service"
    );
    let container = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dataflow")
        .expect("a dataflow container");
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command, ["/bin/sh", "-c"]);
    let script = container["args"][0].as_str().unwrap();
    assert!(
        script.contains("${HOSTNAME##*-}") && script.contains("/tmp/hostfile"),
        "the script derives the index from the hostname: {script}"
    );
    let metrics_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();

    // The pod's environment: envFrom the ConfigMap, the database URL from the Secret.
    let mut env: Vec<(String, String)> = Vec::new();
    for from in container["envFrom"].as_array().unwrap() {
        let cm = manifest(
            &docs,
            "ConfigMap",
            from["configMapRef"]["name"].as_str().unwrap(),
        );
        for (key, value) in cm["data"].as_object().unwrap() {
            env.push((key.clone(), value.as_str().unwrap().to_owned()));
        }
    }
    for e in container["env"].as_array().unwrap() {
        let key = e["name"].as_str().unwrap().to_owned();
        let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) => v.clone(),
            (_, r) if r.is_object() => {
                manifest(&docs, "Secret", r["name"].as_str().unwrap())["stringData"]
                    [r["key"].as_str().unwrap()]
                .as_str()
                .unwrap()
                .to_owned()
            }
            _ => continue,
        };
        env.push((key, value));
    }
    assert!(
        env.iter()
            .any(|(k, v)| k == "HORSESTREAM_DATABASE_URL" && *v == pods_store)
    );

    // Each pod: its own /etc/hosts naming both pods, its own address, its hostname.
    let sts_name = sts["metadata"]["name"].as_str().unwrap();
    let address = |i: usize| format!("127.0.0.{}", i + 2);
    let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for i in 0..2 {
        hosts.push_str(&format!(
            "\n{} {sts_name}-{i}.{service}.default.svc\n",
            address(i)
        ));
    }
    let hosts_file = dir.path().join("hosts");
    std::fs::write(&hosts_file, hosts).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_horsestream"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut pods: Vec<Pod> = (0..2)
        .map(|i| {
            let pod_script = script.replace("0.0.0.0:", &format!("{}:", address(i)));
            let log_path = dir.path().join(format!("pod-{i}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let mut c = Command::new("unshare");
            c.args(["--mount", "--", "/bin/sh", "-c"])
                .arg("mount --bind \"$1\" /etc/hosts && exec /bin/sh -c \"$2\"")
                .arg("pod")
                .arg(&hosts_file)
                .arg(&pod_script)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("HOSTNAME", format!("{sts_name}-{i}"))
                .env("PATH", &path)
                .env("ORT_DYLIB_PATH", required_env("ORT_DYLIB_PATH"))
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log));
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            Pod {
                name: format!("{sts_name}-{i}"),
                child: c.spawn().expect("unshare (util-linux) runs each pod"),
                log: log_path,
            }
        })
        .collect();

    // The StatefulSet's processes run until stopped: wait for every chunk to be stored.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut rows = Vec::new();
    while Instant::now() < deadline {
        rows = stored(&pods_store, &name);
        if rows.len() >= reference.len() && analysis(&pods_store, &name) == analysis(&single, &name)
        {
            break;
        }
        for pod in &mut pods {
            if let Some(status) = pod.child.try_wait().unwrap() {
                panic!(
                    "{} ended ({status}) before storing everything; its log:\n{}",
                    pod.name,
                    pod.logs()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Both pods serve their probes' endpoint on their own address.
    for (i, pod) in pods.iter().enumerate() {
        let body = metrics_of(&format!("{}:{metrics_port}", address(i)));
        assert!(
            body.starts_with("HTTP/1.1 200") && body.contains("horsestream_"),
            "{}'s /metrics: {body}",
            pod.name
        );
    }
    // Both at once, as a StatefulSet's deletion does (one alone would see its peer vanish).
    for pod in &pods {
        pod.terminate();
    }
    let pod_logs: String = pods
        .iter()
        .map(|p| format!("--- {}:\n{}", p.name, p.logs()))
        .collect();
    drop(pods);

    assert_eq!(
        rows, reference,
        "the two pods stored what one process stores\n{pod_logs}"
    );
    assert_eq!(
        analysis(&pods_store, &name),
        analysis(&single, &name),
        "the two pods' horses and gait are one process's\n{pod_logs}"
    );
}
