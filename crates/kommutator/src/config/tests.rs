use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_reflection::{ContainerFormat, Format, Registry, Tracer, TracerConfig};

use super::*;

const EXAMPLE: &str = include_str!("../../../../kommutator.example.toml");

fn no_environment(_: &str) -> Option<String> {
    None
}

fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn example_parses_and_resolves() {
    let raw = parse(EXAMPLE, Path::new("kommutator.example.toml")).expect("example parses");
    let settings = raw.resolve(&no_environment).expect("example resolves");
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.asterisk.len(), 1);
    assert_eq!(settings.asterisk[0].secret.expose(), "change-me");
}

/// The example documents commented-out optional fields as `# key = value` (and optional blocks
/// as `# [[table]]`); with the comment marks removed it must still parse, and together they
/// must name every field of the schema.
#[test]
fn example_covers_every_field() {
    let uncommented = uncomment_examples(EXAMPLE);
    parse(&uncommented, Path::new("uncommented example")).expect("commented examples parse");
    let value: toml::Value = toml::from_str(&uncommented).expect("valid TOML");
    let mut in_example = BTreeSet::new();
    collect_toml_paths(&value, "", &mut in_example);

    let mut tracer = Tracer::new(TracerConfig::default());
    tracer
        .trace_simple_type::<RawConfig>()
        .expect("config traces");
    // Nested enums (log format, auth method) are not explored variant by variant; only struct
    // fields matter here, so the unchecked registry is enough.
    let registry = tracer.registry_unchecked();
    let mut in_schema = BTreeSet::new();
    collect_schema_paths(&registry, "RawConfig", "", &mut in_schema);

    // A map-valued field (`users = { "101" = 1 }`) is one leaf of the schema but several keys
    // in the example: a key under a schema leaf counts as that leaf.
    let covers = |leaf: &String, key: &String| key == leaf || key.starts_with(&format!("{leaf}."));
    let missing: Vec<_> = in_schema
        .iter()
        .filter(|leaf| !in_example.iter().any(|key| covers(leaf, key)))
        .collect();
    assert!(
        missing.is_empty(),
        "kommutator.example.toml lacks {missing:?}"
    );
    let unknown: Vec<_> = in_example
        .iter()
        .filter(|key| !in_schema.iter().any(|leaf| covers(leaf, key)))
        .collect();
    assert!(
        unknown.is_empty(),
        "kommutator.example.toml has unknown {unknown:?}"
    );
}

fn uncomment_examples(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            // A commented-out optional block: `# [[events.webhook]]`.
            Some(rest)
                if rest.starts_with("[[")
                    && rest.ends_with("]]")
                    && rest[2..rest.len() - 2]
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.') =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn collect_toml_paths(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                let path = join(prefix, key);
                match child {
                    toml::Value::Table(_) => collect_toml_paths(child, &path, out),
                    toml::Value::Array(items)
                        if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
                    {
                        for item in items {
                            collect_toml_paths(item, &path, out);
                        }
                    }
                    _ => {
                        out.insert(path);
                    }
                }
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn collect_schema_paths(
    registry: &Registry,
    type_name: &str,
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    let Some(ContainerFormat::Struct(fields)) = registry.get(type_name) else {
        out.insert(prefix.to_owned());
        return;
    };
    for field in fields {
        let path = join(prefix, &field.name);
        match struct_name(registry, &field.value) {
            Some(name) => collect_schema_paths(registry, &name, &path, out),
            None => {
                out.insert(path);
            }
        }
    }
}

/// The struct a field leads into (through Option and Vec), if it is a table rather than a value.
fn struct_name(registry: &Registry, format: &Format) -> Option<String> {
    match format {
        Format::Option(inner) | Format::Seq(inner) => struct_name(registry, inner),
        Format::TypeName(name) => match registry.get(name) {
            Some(ContainerFormat::Struct(_)) => Some(name.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

#[test]
fn misspelled_key_is_named_with_its_line() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n";
    let err = parse(text, Path::new("k.toml")).unwrap_err().to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `lisen`"), "{err}");
    assert!(err.starts_with("k.toml"), "{err}");
}

#[test]
fn empty_file_gives_working_defaults() {
    let settings = parse("", Path::new("k.toml"))
        .unwrap()
        .resolve(&no_environment)
        .unwrap();
    assert_eq!(settings.storage.url.expose(), "sqlite://kommutator.db");
    assert_eq!(settings.server.public_url, "http://127.0.0.1:8080");
    assert!(settings.asterisk.is_empty());
}

#[test]
fn environment_wins_over_inline_secret_and_everything_is_masked() {
    let text = r#"
[storage]
url = "postgres://app:inline-pw@db/app"
[[pbx.asterisk]]
name = "main-pbx"
host = "pbx"
username = "cti"
secret = "inline-secret"
"#;
    let env = env_from(&[
        ("KOMMUTATOR_ASTERISK_MAIN_PBX_SECRET", "from-env"),
        ("KOMMUTATOR_STORAGE_URL", "postgres://app:env-pw@db/app"),
    ]);
    let settings = parse(text, Path::new("k.toml"))
        .unwrap()
        .resolve(&env)
        .unwrap();
    assert_eq!(settings.asterisk[0].secret.expose(), "from-env");
    assert_eq!(
        settings.storage.url.expose(),
        "postgres://app:env-pw@db/app"
    );
    let described = format!("{}\n{:?}", settings.describe(), settings);
    for secret in ["from-env", "env-pw", "inline"] {
        assert!(!described.contains(secret), "{secret} leaked: {described}");
    }
    assert!(
        described.contains("postgres://app:********@db/app"),
        "{described}"
    );
}

#[test]
fn secret_file_is_read_and_missing_secret_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("ami");
    std::fs::write(&secret_path, "from-file\n").unwrap();
    let text = format!(
        "[[pbx.asterisk]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\nsecret_file = {:?}\n",
        secret_path.display().to_string()
    );
    let settings = parse(&text, Path::new("k.toml"))
        .unwrap()
        .resolve(&no_environment)
        .unwrap();
    assert_eq!(settings.asterisk[0].secret.expose(), "from-file");

    let text = "[[pbx.asterisk]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n";
    let err = parse(text, Path::new("k.toml"))
        .unwrap()
        .resolve(&no_environment)
        .unwrap_err()
        .to_string();
    assert!(err.contains("KOMMUTATOR_ASTERISK_A_SECRET"), "{err}");
}

#[test]
fn bad_values_name_the_field() {
    for (text, field) in [
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[storage]\nurl = \"mysql://x\"\n", "storage.url"),
        (
            "[phone]\ndefault_region = \"Russia\"\n",
            "phone.default_region",
        ),
        ("[log]\nformat = \"xml\"\n", "line 2"),
    ] {
        let err = parse(text, Path::new("k.toml"))
            .and_then(|raw| raw.resolve(&no_environment))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{text}: {err}");
    }
}

#[test]
fn url_passwords_are_masked() {
    assert_eq!(
        mask_url_password("postgres://u:p@h:5432/d"),
        "postgres://u:********@h:5432/d"
    );
    assert_eq!(mask_url_password("postgres://u@h/d"), "postgres://u@h/d");
    assert_eq!(mask_url_password("sqlite://k.db"), "sqlite://k.db");
}

#[test]
fn event_webhooks_resolve_with_their_secret_and_bad_ones_name_the_field() {
    let hook = |extra: &str| {
        format!(
            "[[events.webhook]]\nname = \"bi\"\nurl = \"https://bi.example/hook?token=t\"\n{extra}"
        )
    };
    let raw = parse(&hook("kinds = [\"call.*\"]\n"), Path::new("k.toml")).expect("parses");
    let settings = raw
        .resolve(&env_from(&[(
            "KOMMUTATOR_EVENTS_BI_SECRET",
            "a-long-shared-secret",
        )]))
        .expect("resolves");
    assert_eq!(settings.event_webhooks.len(), 1);
    let bi = &settings.event_webhooks[0];
    assert_eq!(bi.connector.secret, "a-long-shared-secret");
    assert!(bi.kinds.accepts("call.answered") && !bi.kinds.accepts("agent.status"));
    let described = settings.describe();
    assert!(described.contains("events.webhook bi: https://bi.example/hook secret=***"));
    assert!(!described.contains("a-long-shared-secret") && !described.contains("token=t"));

    for (extra, expected) in [
        ("", "KOMMUTATOR_EVENTS_BI_SECRET"),
        ("secret = \"short\"\n", "at least 16"),
        (
            "secret = \"a-long-shared-secret\"\nkinds = [\"Call\"]\n",
            "kinds",
        ),
        (
            "secret = \"a-long-shared-secret\"\nrate_per_sec = -1\n",
            "rate_per_sec",
        ),
    ] {
        let err = parse(&hook(extra), Path::new("k.toml"))
            .and_then(|raw| raw.resolve(&no_environment))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{extra}: {err}");
    }
    let twice = format!(
        "{}{}",
        hook("secret = \"a-long-shared-secret\"\n"),
        hook("secret = \"a-long-shared-secret\"\n")
    );
    let err = parse(&twice, Path::new("k.toml"))
        .and_then(|raw| raw.resolve(&no_environment))
        .unwrap_err()
        .to_string();
    assert!(err.contains("used twice"), "{err}");
}
