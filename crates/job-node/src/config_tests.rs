use std::collections::HashMap;

use super::*;
use crate::test_util::TempDir;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn no_env() -> impl Fn(&str) -> Option<String> {
    env(&[])
}

#[test]
fn defaults() {
    let config = NodeConfig::resolve_with(&StartArgs::default(), no_env()).unwrap();
    assert_eq!(config.listen, DEFAULT_LISTEN);
    assert_eq!(config.name, "node-7700");
    assert!(config.join.is_empty() && config.tags.is_empty() && config.allow_exec.is_empty());
    assert!(config.workers >= 1);
    assert!(config.uses_development_secret());
    assert!(config.http.is_none() && config.data_dir.is_none());
    assert!(
        !format!("{config:?}").contains(config.secret.expose()),
        "secret leaked in Debug"
    );
}

#[test]
fn precedence_cli_over_env_over_file() {
    let dir = TempDir::new();
    let file_secret = dir.write("file.secret", "from-file\n");
    let env_secret = dir.write("env.secret", "  from-env  ");
    let config_file = dir.write(
        "node.toml",
        &format!(
            "name = \"file-name\"\nlisten = \"127.0.0.1:9000\"\nworkers = 3\n\
             tags = [\"file-tag\"]\njoin = [\"ws://127.0.0.1:9100\"]\n\
             http = \"127.0.0.1:9200\"\nallow_exec = [\"ls\"]\nsecret_file = {:?}\n\
             data_dir = \"/file/data\"\n",
            file_secret.display()
        ),
    );
    let environment = env(&[
        ("JOBMESH_CONFIG", config_file.to_str().unwrap()),
        ("JOBMESH_NAME", "env-name"),
        ("JOBMESH_WORKERS", "5"),
        ("JOBMESH_TAGS", "gpu, ssd"),
        ("JOBMESH_SECRET_FILE", env_secret.to_str().unwrap()),
        ("JOBMESH_HTTP", ""),
    ]);
    let args = StartArgs {
        name: Some("cli-name".into()),
        ..StartArgs::default()
    };
    let config = NodeConfig::resolve_with(&args, environment).unwrap();
    assert_eq!(config.name, "cli-name", "CLI beats env");
    assert_eq!(config.workers, 5, "env beats file");
    assert_eq!(config.tags, ["gpu", "ssd"], "env lists are comma-separated");
    assert_eq!(
        config.secret.expose(),
        "from-env",
        "env beats file, trimmed"
    );
    assert_eq!(
        config.listen,
        "127.0.0.1:9000".parse().unwrap(),
        "file beats default"
    );
    assert_eq!(config.join, ["ws://127.0.0.1:9100"]);
    assert_eq!(
        config.http,
        Some("127.0.0.1:9200".parse().unwrap()),
        "empty env is unset"
    );
    assert_eq!(config.allow_exec, ["ls"]);
    assert_eq!(config.data_dir, Some(PathBuf::from("/file/data")));
}

#[test]
fn cli_config_flag_beats_env_config() {
    let dir = TempDir::new();
    let a = dir.write("a.toml", "name = \"from-a\"\n");
    let b = dir.write("b.toml", "name = \"from-b\"\n");
    let args = StartArgs {
        config: Some(a),
        ..StartArgs::default()
    };
    let environment = env(&[("JOBMESH_CONFIG", b.to_str().unwrap())]);
    assert_eq!(
        NodeConfig::resolve_with(&args, environment).unwrap().name,
        "from-a"
    );
}

#[test]
fn bad_file_and_env() {
    let dir = TempDir::new();
    let unknown = dir.write("unknown.toml", "nmae = \"typo\"\n");
    let args = StartArgs {
        config: Some(unknown),
        ..StartArgs::default()
    };
    let err = NodeConfig::resolve_with(&args, no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::ParseFile { .. }), "{err}");
    assert!(err.to_string().contains("nmae"), "{err}");
    let args = StartArgs {
        config: Some(dir.path().join("missing.toml")),
        ..StartArgs::default()
    };
    let err = NodeConfig::resolve_with(&args, no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }));
    let err = NodeConfig::resolve_with(&StartArgs::default(), env(&[("JOBMESH_WORKERS", "lots")]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::BadEnv {
                var: "JOBMESH_WORKERS",
                ..
            }
        ),
        "{err}"
    );
    let err = NodeConfig::resolve_with(&StartArgs::default(), env(&[("JOBMESH_LISTEN", "x:1")]))
        .unwrap_err();
    assert!(err.to_string().contains("JOBMESH_LISTEN"), "{err}");
}

#[test]
fn rules_are_enforced() {
    let layer = |f: fn(&mut ConfigLayer)| {
        let mut layer = ConfigLayer::default();
        f(&mut layer);
        NodeConfig::from_layer(layer)
    };
    assert!(matches!(
        layer(|l| l.name = Some("a@b".into())),
        Err(ConfigError::InvalidName(_))
    ));
    assert!(matches!(
        layer(|l| l.name = Some(String::new())),
        Err(ConfigError::InvalidName(_))
    ));
    assert!(matches!(
        layer(|l| l.name = Some("x".repeat(65))),
        Err(ConfigError::InvalidName(_))
    ));
    assert!(layer(|l| l.name = Some("Node_1.a-b".into())).is_ok());
    assert!(matches!(
        layer(|l| l.tags = Some(vec!["g pu".into()])),
        Err(ConfigError::InvalidTag(_))
    ));
    assert!(matches!(
        layer(|l| l.join = Some(vec!["http://127.0.0.1:1".into()])),
        Err(ConfigError::InvalidJoinUrl(_))
    ));
    assert!(layer(|l| l.join = Some(vec!["wss://example.invalid:443".into()])).is_ok());
    assert!(matches!(
        layer(|l| l.workers = Some(0)),
        Err(ConfigError::ZeroWorkers)
    ));
}

#[test]
fn public_address_needs_a_secret() {
    let public = ConfigLayer {
        listen: Some("0.0.0.0:7700".parse().unwrap()),
        ..ConfigLayer::default()
    };
    let err = NodeConfig::from_layer(public.clone()).unwrap_err();
    assert!(matches!(err, ConfigError::SecretRequired(_)));
    assert!(err.to_string().contains("--secret-file"), "{err}");
    let dir = TempDir::new();
    let with_secret = ConfigLayer {
        secret_file: Some(dir.write("s", "s3cret")),
        ..public
    };
    let config = NodeConfig::from_layer(with_secret).unwrap();
    assert!(!config.uses_development_secret());
    let v6_loopback = ConfigLayer {
        listen: Some("[::1]:7700".parse().unwrap()),
        ..ConfigLayer::default()
    };
    assert!(NodeConfig::from_layer(v6_loopback)
        .unwrap()
        .uses_development_secret());
}

#[test]
fn secret_file_must_not_be_empty() {
    let dir = TempDir::new();
    let layer = ConfigLayer {
        secret_file: Some(dir.write("empty", " \n\t\n")),
        ..ConfigLayer::default()
    };
    let err = NodeConfig::from_layer(layer).unwrap_err();
    assert!(
        matches!(err, ConfigError::Secret(SecretError::Empty { .. })),
        "{err}"
    );
    let layer = ConfigLayer {
        secret_file: Some(dir.path().join("absent")),
        ..ConfigLayer::default()
    };
    assert!(matches!(
        NodeConfig::from_layer(layer),
        Err(ConfigError::Secret(SecretError::Read { .. }))
    ));
}

#[test]
fn retention_sizes_and_ages_parse() {
    use std::time::Duration;
    assert_eq!(
        "24h".parse::<Span>().unwrap().0,
        Duration::from_secs(86_400)
    );
    assert_eq!("90".parse::<Span>().unwrap().0, Duration::from_secs(90));
    assert_eq!(
        "7d".parse::<Span>().unwrap().0,
        Duration::from_secs(604_800)
    );
    for bad in ["", "0", "1w", "h", "-5m"] {
        assert!(bad.parse::<Span>().is_err(), "{bad}");
    }
    assert_eq!("256MiB".parse::<ByteSize>().unwrap().0, 256 << 20);
    assert_eq!("64k".parse::<ByteSize>().unwrap().0, 64 << 10);
    assert_eq!("1000".parse::<ByteSize>().unwrap().0, 1000);
    assert!("12 parsecs".parse::<ByteSize>().is_err());
    let layer = ConfigLayer::from_toml("retention = \"15m\"\nretention_bytes = 4096\n").unwrap();
    let config = NodeConfig::from_layer(layer).unwrap();
    assert_eq!(config.retention, Duration::from_secs(900));
    assert_eq!(config.retention_bytes, 4096);
    let defaults = NodeConfig::from_layer(ConfigLayer::default()).unwrap();
    assert_eq!(
        (defaults.retention, defaults.retention_bytes),
        (DEFAULT_RETENTION, DEFAULT_RETENTION_BYTES)
    );
}

#[test]
fn external_workers_can_be_refused_by_flag_env_or_file() {
    let on = NodeConfig::resolve_with(&StartArgs::default(), no_env()).unwrap();
    assert!(on.external_workers, "allowed by default");
    let args = StartArgs {
        no_external_workers: true,
        ..StartArgs::default()
    };
    assert!(
        !NodeConfig::resolve_with(&args, no_env())
            .unwrap()
            .external_workers
    );
    let environment = env(&[("JOBMESH_NO_EXTERNAL_WORKERS", "true")]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert!(!config.external_workers);
    let dir = TempDir::new();
    let file = dir.write("node.toml", "no_external_workers = true\n");
    let environment = env(&[("JOBMESH_CONFIG", file.to_str().unwrap())]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert!(!config.external_workers);
    let bad = env(&[("JOBMESH_NO_EXTERNAL_WORKERS", "maybe")]);
    assert!(NodeConfig::resolve_with(&StartArgs::default(), bad).is_err());
}

#[test]
fn external_kinds_come_from_flag_env_or_file_and_are_checked() {
    let any = NodeConfig::resolve_with(&StartArgs::default(), no_env()).unwrap();
    assert_eq!(any.external_kinds, None, "any kind by default");
    let args = StartArgs {
        external_kinds: Some(vec!["resize".into(), "ocr".into()]),
        ..StartArgs::default()
    };
    let config = NodeConfig::resolve_with(&args, no_env()).unwrap();
    assert_eq!(config.external_kinds.unwrap(), ["resize", "ocr"]);
    let environment = env(&[("JOBMESH_EXTERNAL_KINDS", "a, b")]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert_eq!(config.external_kinds.unwrap(), ["a", "b"]);
    let dir = TempDir::new();
    let file = dir.write("node.toml", "external_kinds = [\"thumb\"]\n");
    let environment = env(&[("JOBMESH_CONFIG", file.to_str().unwrap())]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert_eq!(config.external_kinds.unwrap(), ["thumb"]);
    for bad in [vec![], vec!["has space".to_owned()]] {
        let args = StartArgs {
            external_kinds: Some(bad),
            ..StartArgs::default()
        };
        let err = NodeConfig::resolve_with(&args, no_env()).unwrap_err();
        assert!(
            err.to_string().contains("invalid --external-kinds"),
            "{err}"
        );
    }
}

#[test]
fn limits_from_file_env_and_command_line() {
    let dir = TempDir::new();
    let file = dir.write(
        "node.toml",
        "limits = [\"kind=sleep,running=2,rate=50\", \"kind=io,rate=5,burst=2\"]\n",
    );
    let from_file = env(&[("JOBMESH_CONFIG", file.to_str().unwrap())]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), from_file).unwrap();
    let shown: Vec<String> = config.limits.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["kind=sleep,running=2,rate=50", "kind=io,rate=5,burst=2"]
    );
    let from_env = env(&[("JOBMESH_LIMITS", "kind=a,running=1; kind=b,rate=0.5")]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), from_env).unwrap();
    assert_eq!(config.limits.len(), 2);
    assert_eq!(config.limits[1].rate, Some(0.5));
    let bad_env = env(&[("JOBMESH_LIMITS", "kind=a,running=0")]);
    let err = NodeConfig::resolve_with(&StartArgs::default(), bad_env).unwrap_err();
    assert!(err.to_string().contains("JOBMESH_LIMITS"), "{err}");
    let args = StartArgs {
        limits: Some(vec![
            "kind=a,running=1".parse().unwrap(),
            "kind=a,rate=3".parse().unwrap(),
        ]),
        ..StartArgs::default()
    };
    let err = NodeConfig::resolve_with(&args, no_env()).unwrap_err();
    assert!(
        err.to_string().contains("two limits for job kind \"a\""),
        "{err}"
    );
    let bad_file = dir.write("bad.toml", "limits = [\"kind=a,speed=3\"]\n");
    let err = ConfigLayer::from_file(&bad_file).unwrap_err();
    assert!(format!("{err:?}").contains("speed"), "{err:?}");
}

#[test]
fn idempotent_kinds_from_each_layer_and_checked() {
    let config = NodeConfig::resolve_with(&StartArgs::default(), no_env()).unwrap();
    assert!(config.idempotent.is_empty(), "none by default");
    let environment = env(&[("JOBMESH_IDEMPOTENT", "sleep, sha256")]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert_eq!(config.idempotent, ["sleep", "sha256"]);
    let args = StartArgs {
        idempotent: Some(vec!["echo".into()]),
        ..StartArgs::default()
    };
    let environment = env(&[("JOBMESH_IDEMPOTENT", "sleep")]);
    let config = NodeConfig::resolve_with(&args, environment).unwrap();
    assert_eq!(config.idempotent, ["echo"], "CLI beats env");
    let dir = TempDir::new();
    let file = dir.write("node.toml", "idempotent = [\"echo\"]\n");
    let environment = env(&[("JOBMESH_CONFIG", file.to_str().unwrap())]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert_eq!(config.idempotent, ["echo"], "a config file key");
    let long = "k".repeat(65);
    let args = StartArgs {
        idempotent: Some(vec![long]),
        ..StartArgs::default()
    };
    let err = NodeConfig::resolve_with(&args, no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::Idempotent(_)), "{err}");
}

#[test]
fn runtime_threads_from_each_layer_and_checked() {
    let config = NodeConfig::resolve_with(&StartArgs::default(), no_env()).unwrap();
    assert_eq!(config.threads, None, "one per CPU by default");
    let config = NodeConfig::resolve_with(&StartArgs::default(), env(&[("JOBMESH_THREADS", "2")]));
    assert_eq!(config.unwrap().threads, Some(2));
    let args = StartArgs {
        threads: Some(1),
        ..StartArgs::default()
    };
    let config = NodeConfig::resolve_with(&args, env(&[("JOBMESH_THREADS", "2")])).unwrap();
    assert_eq!(config.threads, Some(1), "CLI beats env");
    let dir = TempDir::new();
    let file = dir.write("node.toml", "threads = 3\n");
    let environment = env(&[("JOBMESH_CONFIG", file.to_str().unwrap())]);
    let config = NodeConfig::resolve_with(&StartArgs::default(), environment).unwrap();
    assert_eq!(config.threads, Some(3), "a config file key");
    for bad in [0, 1025] {
        let args = StartArgs {
            threads: Some(bad),
            ..StartArgs::default()
        };
        let err = NodeConfig::resolve_with(&args, no_env()).unwrap_err();
        assert!(matches!(err, ConfigError::Threads(n) if n == bad), "{err}");
    }
}

#[test]
fn local_nodes_share_the_cpus() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(crate::local_cluster::threads_per_node(1), cpus);
    assert_eq!(crate::local_cluster::threads_per_node(u16::MAX), 1);
    assert!(crate::local_cluster::threads_per_node(3) * 3 <= cpus.max(3));
}
