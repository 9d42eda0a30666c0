//! The agent's configuration: a TOML file (`--config`), then the command line's flags, which
//! win, then the defaults. Every key is in `docs/agent.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_FILE_AGE: Duration = Duration::from_secs(3600);
pub const DEFAULT_RETAIN_BYTES: u64 = 1 << 30;
pub const DEFAULT_OTLP_QUEUE: usize = 8192;
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);
/// The largest export queue: records are about a KiB each, and the queue is the agent's
/// memory while the collector is away.
pub const MAX_OTLP_QUEUE: usize = 65_536;
/// Headers the agent sets itself, which the configuration may not override.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
];

/// The file, as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<String>,
    pub trace_dir: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    #[serde(default)]
    pub redact: Vec<String>,
    #[serde(default)]
    pub capture_env: Vec<String>,
    pub ring_buffer: Option<String>,
    pub batch_delay_ms: Option<u64>,
    pub python_inspect: Option<bool>,
    pub shutdown_timeout: Option<String>,
    #[serde(default)]
    pub rotation: RotationFile,
    #[serde(default)]
    pub otlp: OtlpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFile {
    pub max_file_size: Option<String>,
    pub max_file_age: Option<String>,
    pub retain_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpFile {
    pub endpoint: Option<String>,
    pub events: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<String>,
    pub queue: Option<usize>,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let message = e.message().to_owned();
            let line = e
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            match line {
                Some(line) => anyhow!("config file {}, line {line}: {message}", path.display()),
                None => anyhow!("config file {}: {message}", path.display()),
            }
        })
    }
}

/// Which lifecycle events go to OTLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpEvents {
    /// Those of processes that matter: with a role, their lineage and their descendants.
    Lineage,
    /// Every process's.
    All,
}

impl OtlpEvents {
    pub fn parse(text: &str) -> Result<OtlpEvents> {
        match text {
            "lineage" => Ok(OtlpEvents::Lineage),
            "all" => Ok(OtlpEvents::All),
            _ => bail!("{text:?} is not an OTLP event selection: give lineage or all"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_file_bytes: u64,
    pub max_file_age: Duration,
    pub retain_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Otlp {
    /// The collector's base URL (`http://host:4318`); logs go to `/v1/logs` under it.
    pub endpoint: String,
    pub events: OtlpEvents,
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
    pub queue: usize,
}

/// What the agent runs with, after the file, the flags and the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub trace_dir: Option<PathBuf>,
    pub rotation: Rotation,
    pub otlp: Option<Otlp>,
    pub rules: Option<PathBuf>,
    pub redact: Vec<String>,
    pub capture_env: Vec<String>,
    pub ring_buffer: Option<String>,
    pub batch_delay_ms: Option<u64>,
    /// Read Python interpreters' daemonic flags.
    pub python_inspect: bool,
    /// How long the stop may take to flush every exporter.
    pub shutdown_timeout: Duration,
}

/// The flags, as given (None where not given).
#[derive(Debug, Default)]
pub struct AgentFlags {
    pub listen: Option<String>,
    pub trace_dir: Option<PathBuf>,
    pub rotate_size: Option<String>,
    pub rotate_age: Option<String>,
    pub retain_size: Option<String>,
    pub otlp_endpoint: Option<String>,
    pub otlp_events: Option<String>,
    pub rules: Option<PathBuf>,
    pub redact: Vec<String>,
    pub capture_env: Vec<String>,
    pub ring_buffer: Option<String>,
    pub batch_delay_ms: Option<u64>,
    pub python_inspect: Option<bool>,
}

impl AgentConfig {
    pub fn resolve(file: ConfigFile, flags: AgentFlags) -> Result<AgentConfig> {
        let listen_text = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| {
            anyhow!("{listen_text:?} is not an address to listen on: give IP:PORT, e.g. {DEFAULT_LISTEN}")
        })?;
        let size = |flag: Option<String>, key: Option<String>, name: &str, default: u64| {
            flag.or(key)
                .map(|text| parse_bytes(&text).with_context(|| name.to_owned()))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let age = |flag: Option<String>, key: Option<String>, name: &str, default: Duration| {
            flag.or(key)
                .map(|text| parse_duration(&text).with_context(|| name.to_owned()))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let rotation = Rotation {
            max_file_bytes: size(
                flags.rotate_size,
                file.rotation.max_file_size,
                "rotation: max_file_size",
                DEFAULT_MAX_FILE_BYTES,
            )?,
            max_file_age: age(
                flags.rotate_age,
                file.rotation.max_file_age,
                "rotation: max_file_age",
                DEFAULT_MAX_FILE_AGE,
            )?,
            retain_bytes: size(
                flags.retain_size,
                file.rotation.retain_size,
                "rotation: retain_size",
                DEFAULT_RETAIN_BYTES,
            )?,
        };
        if rotation.retain_bytes < rotation.max_file_bytes {
            bail!(
                "rotation: retain_size ({}) is smaller than max_file_size ({}): the current file alone would not fit",
                rotation.retain_bytes,
                rotation.max_file_bytes
            );
        }
        let otlp = match flags.otlp_endpoint.or(file.otlp.endpoint) {
            None => None,
            Some(endpoint) => Some(Otlp {
                endpoint: check_endpoint(&endpoint)?,
                events: flags
                    .otlp_events
                    .or(file.otlp.events)
                    .map(|text| OtlpEvents::parse(&text))
                    .transpose()?
                    .unwrap_or(OtlpEvents::Lineage),
                headers: check_headers(file.otlp.headers)?,
                timeout: age(
                    None,
                    file.otlp.timeout,
                    "otlp: timeout",
                    DEFAULT_OTLP_TIMEOUT,
                )?,
                queue: match file.otlp.queue.unwrap_or(DEFAULT_OTLP_QUEUE) {
                    queue @ 1..=MAX_OTLP_QUEUE => queue,
                    queue => bail!("otlp: queue = {queue}: give 1 to {MAX_OTLP_QUEUE} records"),
                },
            }),
        };
        let shutdown_timeout = age(
            None,
            file.shutdown_timeout,
            "shutdown_timeout",
            DEFAULT_SHUTDOWN_BUDGET,
        )?;
        // Lists add up: the file's patterns and variables, then the flags'.
        let mut redact = file.redact;
        redact.extend(flags.redact);
        let mut capture_env = file.capture_env;
        capture_env.extend(flags.capture_env);
        Ok(AgentConfig {
            listen,
            trace_dir: flags.trace_dir.or(file.trace_dir),
            rotation,
            otlp,
            rules: flags.rules.or(file.rules),
            redact,
            capture_env,
            ring_buffer: flags.ring_buffer.or(file.ring_buffer),
            batch_delay_ms: flags.batch_delay_ms.or(file.batch_delay_ms),
            python_inspect: flags.python_inspect.or(file.python_inspect).unwrap_or(true),
            shutdown_timeout,
        })
    }
}

fn check_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("http://") else {
        if trimmed.starts_with("https://") {
            bail!(
                "OTLP endpoint {endpoint:?}: https is not supported; send to a collector on this host or node (http://127.0.0.1:4318), which forwards over TLS"
            );
        }
        bail!("OTLP endpoint {endpoint:?} is not an http:// URL, e.g. http://127.0.0.1:4318");
    };
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        bail!("OTLP endpoint {endpoint:?} names no host, e.g. http://127.0.0.1:4318");
    }
    Ok(trimmed.to_owned())
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    for (name, value) in &headers {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !name_ok {
            bail!("otlp: headers: {name:?} is not an HTTP header name");
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            bail!("otlp: headers: {name} is set by the agent itself");
        }
        if value.bytes().any(|b| b.is_ascii_control()) {
            bail!("otlp: headers: the value of {name} holds control characters");
        }
    }
    Ok(headers)
}

/// `64M`, `1G`, `512K` or bytes.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let upper = text.trim().to_ascii_uppercase();
    let upper = upper.strip_suffix('B').unwrap_or(&upper);
    let (number, scale) = match upper.char_indices().last() {
        Some((at, 'K')) => (&upper[..at], 1u64 << 10),
        Some((at, 'M')) => (&upper[..at], 1 << 20),
        Some((at, 'G')) => (&upper[..at], 1 << 30),
        _ => (upper, 1),
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&bytes| bytes >= 4096)
        .ok_or_else(|| anyhow!("{text:?} is not a size: give bytes or K/M/G, at least 4K"))
}

/// `90s`, `30m`, `1h`, `250ms`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| anyhow!("{text:?} is not a duration: give e.g. 250ms, 90s, 30m, 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_then_the_file_then_the_flags() {
        let defaults = AgentConfig::resolve(ConfigFile::default(), AgentFlags::default()).unwrap();
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(defaults.rotation.max_file_bytes, DEFAULT_MAX_FILE_BYTES);
        assert_eq!(defaults.otlp, None);
        assert_eq!(defaults.trace_dir, None);

        let config = file(
            r#"
            listen = "0.0.0.0:9100"
            trace_dir = "/var/lib/tracer-agent"
            redact = ["--password[= ](\\S+)"]
            [rotation]
            max_file_size = "16M"
            max_file_age = "30m"
            retain_size = "256M"
            [otlp]
            endpoint = "http://127.0.0.1:4318/"
            events = "all"
            headers = { authorization = "Bearer x" }
            timeout = "3s"
            "#,
        );
        let flags = AgentFlags {
            listen: Some("127.0.0.1:9200".into()),
            redact: vec!["token=(\\S+)".into()],
            otlp_events: Some("lineage".into()),
            ..AgentFlags::default()
        };
        let resolved = AgentConfig::resolve(config, flags).unwrap();
        assert_eq!(
            resolved.listen.to_string(),
            "127.0.0.1:9200",
            "the flag wins"
        );
        assert_eq!(
            resolved.trace_dir.as_deref(),
            Some(Path::new("/var/lib/tracer-agent"))
        );
        assert_eq!(resolved.rotation.max_file_bytes, 16 << 20);
        assert_eq!(resolved.rotation.max_file_age, Duration::from_secs(1800));
        assert_eq!(resolved.redact.len(), 2, "lists add up");
        let otlp = resolved.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://127.0.0.1:4318");
        assert_eq!(otlp.events, OtlpEvents::Lineage);
        assert_eq!(otlp.headers["authorization"], "Bearer x");
        assert_eq!(otlp.timeout, Duration::from_secs(3));
    }

    #[test]
    fn mistakes_are_one_line_that_says_what_to_give() {
        let error = |config: ConfigFile, flags: AgentFlags| {
            format!("{:#}", AgentConfig::resolve(config, flags).unwrap_err())
        };
        let listen = AgentFlags {
            listen: Some("localhost".into()),
            ..AgentFlags::default()
        };
        assert!(error(ConfigFile::default(), listen).contains("give IP:PORT"));
        let tls = file("[otlp]\nendpoint = \"https://collector:4318\"");
        assert!(error(tls, AgentFlags::default()).contains("https is not supported"));
        let size = file("[rotation]\nmax_file_size = \"lots\"");
        assert!(error(size, AgentFlags::default()).contains("max_file_size"));
        let small = file("[rotation]\nmax_file_size = \"1G\"\nretain_size = \"64M\"");
        assert!(error(small, AgentFlags::default()).contains("retain_size"));
        let header = file("[otlp]\nendpoint = \"http://c:4318\"\nheaders = { \"a b\" = \"x\" }");
        assert!(error(header, AgentFlags::default()).contains("header name"));
        let reserved = file("[otlp]\nendpoint = \"http://c:4318\"\nheaders = { Host = \"x\" }");
        assert!(error(reserved, AgentFlags::default()).contains("set by the agent"));
        let queue = file("[otlp]\nendpoint = \"http://c:4318\"\nqueue = 99999999999");
        assert!(error(queue, AgentFlags::default()).contains("give 1 to"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_on = 3\n").unwrap();
        let unknown = format!("{:#}", ConfigFile::read(&path).unwrap_err());
        assert!(
            unknown.contains("line 2") && unknown.contains("listen_on"),
            "{unknown}"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("8192").unwrap(), 8192);
        assert!(parse_bytes("10").is_err());
        assert!(parse_bytes("99999999999G").is_err());
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }
}
