//! The agent's packaging: the systemd unit passes `systemd-analyze verify` and its capability
//! bounding set is enough to capture on this kernel; the Kubernetes DaemonSet has what the
//! agent needs, and the configuration it ships is one the agent accepts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{TRACER, kernel_test, wait_bounded, wait_for_stderr_line, workload};
use tracer::agent::config::{AgentConfig, AgentFlags, ConfigFile};
use yaml_rust2::{Yaml, YamlLoader};

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib")
        .join(path)
}

fn unit() -> String {
    std::fs::read_to_string(contrib("systemd/tracer-agent.service")).unwrap()
}

/// The value of `Key=` in the unit (the last, as systemd reads it).
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let text = unit();
    let dir = tempfile::tempdir().unwrap();
    // As installed: the ExecStart binary must exist for the verifier.
    let installed = dir.path().join("tracer-agent.service");
    std::fs::write(&installed, text.replace("/usr/local/bin/tracer", TRACER)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&installed)
        .output()
        .expect("systemd-analyze (cargo xtask test installs systemd)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "tracer-agent"),
        ("StateDirectoryMode", "0700"),
        ("KillSignal", "SIGTERM"),
        ("LimitMEMLOCK", "infinity"),
        ("AmbientCapabilities", ""),
    ] {
        assert_eq!(setting(&text, key), Some(value), "{key}");
    }
    let exec = setting(&text, "ExecStart").unwrap();
    assert!(
        exec.contains(" agent ") && exec.contains("/var/lib/tracer-agent"),
        "{exec}"
    );
}

#[test]
fn the_units_capability_bounding_set_is_enough_to_capture() {
    let _kernel = kernel_test();
    let text = unit();
    let capabilities: Vec<String> = setting(&text, "CapabilityBoundingSet")
        .unwrap()
        .split_whitespace()
        .map(|cap| cap.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    assert_eq!(
        capabilities,
        ["bpf", "perfmon", "sys_ptrace", "sys_resource"]
    );
    let bounding = format!("-all,+{}", capabilities.join(",+"));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // What systemd does with the unit: the bounding set, no ambient or inheritable
    // capabilities, no_new_privs.
    let mut agent = Command::new("setpriv")
        .arg(format!("--bounding-set={bounding}"))
        .args(["--inh-caps=-all", "--no-new-privs", TRACER, "agent"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--trace-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = wait_for_stderr_line(&mut agent, "tracer agent: capturing");
    let report = workload(&["fork-exec-exit", "--code", "3"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_bounded(&mut agent, Duration::from_secs(30), "tracer agent");
    assert!(status.success(), "{}", stderr.lock().unwrap());
    let child = support::pid(&report, "child");
    let traces: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(traces.len(), 1, "{traces:?}");
    let trace = support::Trace::read(&traces[0]);
    let exit = trace.only(
        "exit of the child",
        trace.exits().filter(|e| e.pid == child),
    );
    assert_eq!(exit.exit_code, Some(3));
}

fn manifests() -> Vec<Yaml> {
    let text = std::fs::read_to_string(contrib("kubernetes/tracer-agent.yaml")).unwrap();
    YamlLoader::load_from_str(&text).expect("the manifest is YAML")
}

fn of_kind<'a>(documents: &'a [Yaml], kind: &str) -> &'a Yaml {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn strings(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .map(|items| items.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_kubernetes_daemonset_has_what_the_agent_needs() {
    let documents = manifests();
    let daemonset = of_kind(&documents, "DaemonSet");
    let pod = &daemonset["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9464"));
    assert_eq!(pod["spec"]["hostPID"].as_bool(), Some(true));
    let containers = pod["spec"]["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let agent = &containers[0];
    assert_eq!(strings(&agent["args"])[0], "agent");
    let security = &agent["securityContext"];
    assert_eq!(security["privileged"].as_bool(), Some(false));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings(&security["capabilities"]["add"]),
        ["BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE"]
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            agent[probe]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{probe}"
        );
        assert_eq!(agent[probe]["httpGet"]["port"].as_str(), Some("metrics"));
    }
    assert_eq!(agent["ports"][0]["containerPort"].as_i64(), Some(9464));

    // Host paths mounted read-only where the agent only reads.
    let volumes = pod["spec"]["volumes"].as_vec().unwrap();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .and_then(|v| v["hostPath"]["path"].as_str())
    };
    let mounts = agent["volumeMounts"].as_vec().unwrap();
    for (path, read_only) in [
        ("/sys/kernel/btf", true),
        ("/sys/fs/cgroup", true),
        ("/var/lib/tracer-agent", false),
    ] {
        let mount = mounts
            .iter()
            .find(|m| host_path(m["name"].as_str().unwrap()) == Some(path))
            .unwrap_or_else(|| panic!("{path} is not mounted"));
        assert_eq!(mount["mountPath"].as_str(), Some(path));
        assert_eq!(
            mount["readOnly"].as_bool().unwrap_or(false),
            read_only,
            "{path}"
        );
    }

    // The configuration it ships is one the agent takes, and agrees with the pod.
    let config_map = of_kind(&documents, "ConfigMap");
    let text = config_map["data"]["agent.toml"].as_str().unwrap();
    let file: ConfigFile = toml::from_str(text).unwrap();
    let config = AgentConfig::resolve(file, AgentFlags::default()).unwrap();
    assert_eq!(config.listen.port(), 9464);
    assert!(
        config.listen.ip().is_unspecified(),
        "kubelet probes the pod's address"
    );
    assert!(
        config
            .trace_dir
            .as_ref()
            .is_some_and(|dir| dir.starts_with("/var/lib/tracer-agent"))
    );
    assert!(
        config
            .capture_env
            .iter()
            .any(|v| v.starts_with("AIRFLOW_CTX_"))
    );
}
