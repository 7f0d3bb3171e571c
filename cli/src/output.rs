//! Text and JSON output, and reading keys from flags.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use trellis_claims::keys::{KeyKind, KeyPair, parse_seed};

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Prints `value` as JSON, or `text` for people.
pub fn emit<T: Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Text => println!("{}", text()),
    }
    Ok(())
}

/// Prints an error: `{"error": {...}}` on stdout in JSON mode, a line on
/// stderr otherwise.
pub fn print_error(output: Output, err: &anyhow::Error) {
    match output {
        Output::Json => {
            let kind = err
                .downcast_ref::<trellis_claims::Error>()
                .map(|e| e.kind().code())
                .or_else(|| {
                    err.downcast_ref::<trellis_lattice_client::CtlError>()
                        .map(|e| e.kind().code())
                })
                .unwrap_or("error");
            let body = serde_json::json!({"error": {"kind": kind, "message": format!("{err:#}")}});
            println!("{body}");
        }
        Output::Text => eprintln!("error: {err:#}"),
    }
}

/// Reads a key given on the command line as a seed or as the path of a
/// file holding one, and checks its kind.
pub fn read_key(value: &str, kind: KeyKind) -> anyhow::Result<KeyPair> {
    Ok(parse_seed(&seed_text(value)?, kind)?)
}

/// Reads a seed of any kind, given as in [`read_key`].
pub fn read_any_key(value: &str) -> anyhow::Result<KeyPair> {
    let seed = seed_text(value)?;
    KeyPair::from_seed(seed.trim()).map_err(|e| {
        trellis_claims::Error::new(
            trellis_claims::ErrorKind::InvalidKey,
            format!("not an nkey seed: {e}"),
        )
        .into()
    })
}

/// The seed text of `value`: a seed itself, or the path of a file holding
/// one.
pub(crate) fn seed_text(value: &str) -> anyhow::Result<String> {
    let trimmed = value.trim();
    if trimmed.len() == 58 && trimmed.starts_with('S') {
        return Ok(trimmed.to_owned());
    }
    std::fs::read_to_string(Path::new(value)).with_context(|| format!("reading key file {value}"))
}

/// Writes `seed` to `path`, readable by its owner only.
pub fn write_seed(path: &Path, seed: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    #[cfg(unix)]
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(format!("{seed}\n").as_bytes())?;
    }
    #[cfg(not(unix))]
    std::fs::write(path, format!("{seed}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Seconds since the Unix epoch, `offset` from now.
pub fn secs_from_now(offset: std::time::Duration) -> u64 {
    trellis_claims::jwt::now_secs().saturating_add(offset.as_secs())
}

/// RFC 3339 form of a Unix time in seconds.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// The `Verified:` line of an inspection (`trellis claims inspect`,
/// `trellis par inspect`), with its value starting at column `column`,
/// and the exit code that goes with the result.
pub fn verdict<T, E: std::fmt::Display>(
    result: &Result<T, E>,
    trust_checked: bool,
    column: usize,
) -> (String, std::process::ExitCode) {
    let label = format!("{:<column$}", "Verified:");
    match result {
        Ok(_) if trust_checked => (
            format!("\n{label}yes (trusted issuer)"),
            std::process::ExitCode::SUCCESS,
        ),
        Ok(_) => (
            format!("\n{label}yes (issuer not checked against a trust list; pass --trust)"),
            std::process::ExitCode::SUCCESS,
        ),
        Err(e) => (
            format!("\n{label}NO — {e}"),
            std::process::ExitCode::FAILURE,
        ),
    }
}
