//! `trellis par`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Serialize;
use trellis_claims::VerifyOptions;
use trellis_claims::jwt::{self, Claims};
use trellis_claims::keys::KeyKind;
use trellis_claims::provider::{
    ArchiveLimits, ProviderArchive, ProviderClaimsRequest, ProviderMetadata,
};

use crate::output::{Output, emit, read_key, rfc3339, secs_from_now};

#[derive(Debug, Subcommand)]
pub enum ParCommand {
    /// Create a signed provider archive from one binary per target.
    Create(Box<CreateArgs>),
    /// Print a provider archive's claims and verify them and its binaries;
    /// exits non-zero when they do not verify.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Issuer (account) key: a seed `SA…` or a file holding one. Defaults
    /// to the development issuer `$TRELLIS_HOME/keys/dev.account.nk`
    /// (`TRELLIS_HOME` defaults to `~/.trellis`), created on first use.
    #[arg(long, env = "TRELLIS_ISSUER")]
    pub issuer: Option<String>,
    /// Provider key: a seed `SV…` or a file holding one. Defaults to
    /// `<keys dir>/<name>.provider.nk`, created on first use, so the
    /// provider keeps its id from one build to the next.
    #[arg(long, env = "TRELLIS_SUBJECT")]
    pub subject: Option<String>,
    /// Directory for provider keys created here. Defaults to
    /// `$TRELLIS_HOME/keys`.
    #[arg(long, env = "TRELLIS_KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,
    /// Human-friendly name.
    #[arg(long, env = "TRELLIS_PROVIDER_NAME")]
    pub name: String,
    /// Contract id served, e.g. `wasi:keyvalue`.
    #[arg(long, env = "TRELLIS_CONTRACT")]
    pub contract: String,
    /// Vendor.
    #[arg(long, env = "TRELLIS_VENDOR", default_value = "")]
    pub vendor: String,
    /// Revision number.
    #[arg(long, env = "TRELLIS_REV", default_value_t = 0)]
    pub rev: u32,
    /// Human-friendly version.
    #[arg(long, env = "TRELLIS_VER")]
    pub ver: Option<String>,
    /// Validity period, e.g. `365d`. Never expires by default.
    #[arg(long, env = "TRELLIS_EXPIRES_IN", value_parser = humantime::parse_duration)]
    pub expires_in: Option<Duration>,
    /// A binary as `<target>=<path>`, where target is `<arch>-<os>`
    /// (e.g. `x86_64-linux`), or a bare path for this machine's target.
    /// Repeat for several.
    #[arg(
        long = "binary",
        env = "TRELLIS_BINARIES",
        value_delimiter = ',',
        required = true
    )]
    pub binaries: Vec<String>,
    /// Where to write the archive.
    #[arg(long, short = 'd', env = "TRELLIS_DESTINATION")]
    pub destination: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The archive.
    pub archive: PathBuf,
    /// Public key of an issuer to trust. Repeat for several. Without it, any
    /// account issuer whose signature verifies is accepted.
    #[arg(long = "trust", env = "TRELLIS_TRUSTED_ISSUERS", value_delimiter = ',')]
    pub trusted_issuers: Vec<String>,
}

pub fn run(cmd: ParCommand, output: Output) -> anyhow::Result<ExitCode> {
    match cmd {
        ParCommand::Create(args) => create(*args, output),
        ParCommand::Inspect(args) => inspect(args, output),
    }
}

#[derive(Serialize)]
struct Created<'a> {
    destination: &'a std::path::Path,
    claims: &'a Claims<ProviderMetadata>,
}

fn create(args: CreateArgs, output: Output) -> anyhow::Result<ExitCode> {
    let issuer = crate::dev::issuer_or_dev(args.issuer.as_deref())?;
    let subject = match &args.subject {
        Some(value) => read_key(value, KeyKind::Provider)?,
        None => crate::dev::key_in(
            &args.keys_dir.clone().unwrap_or_else(crate::dev::keys_dir),
            &args.name,
            KeyKind::Provider,
        )?,
    };
    let here = trellis_claims::provider::current_target();
    let mut binaries = BTreeMap::new();
    for spec in &args.binaries {
        let (target, path) = spec
            .split_once('=')
            .unwrap_or((here.as_str(), spec.as_str()));
        if target.is_empty() || path.is_empty() {
            bail!("--binary takes <target>=<path> or a path, got {spec:?}");
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        if binaries.insert(target.to_owned(), bytes).is_some() {
            bail!("target {target} given twice");
        }
    }
    let request = ProviderClaimsRequest {
        name: args.name.clone(),
        contract_id: args.contract.clone(),
        vendor: args.vendor.clone(),
        rev: args.rev,
        ver: args.ver.clone(),
        expires: args.expires_in.map(secs_from_now),
    };
    let (archive, claims) = ProviderArchive::create(&request, binaries, &issuer, &subject)?;
    std::fs::write(&args.destination, archive.to_bytes()?)
        .with_context(|| format!("writing {}", args.destination.display()))?;
    emit(
        output,
        &Created {
            destination: &args.destination,
            claims: &claims,
        },
        || {
            format!(
                "Wrote {}\n{}",
                args.destination.display(),
                describe(&claims)
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Inspection {
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    issuer_trust_checked: bool,
    claims: Option<Claims<ProviderMetadata>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact: Option<crate::artifacts::Fetched>,
}

fn inspect(args: InspectArgs, output: Output) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.archive)
        .with_context(|| format!("reading {}", args.archive.display()))?;
    inspect_archive(&bytes, &args.trusted_issuers, None, output)
}

/// Shows the claims of the provider archive `bytes`, verified against
/// `trusted_issuers` (any account issuer when empty), with where it came
/// from when it was fetched; the exit code says whether they verified.
pub(crate) fn inspect_archive(
    bytes: &[u8],
    trusted_issuers: &[String],
    artifact: Option<crate::artifacts::Fetched>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let archive = ProviderArchive::from_bytes(bytes, &ArchiveLimits::default())?;
    let options = VerifyOptions {
        trusted_issuers: (!trusted_issuers.is_empty())
            .then(|| trusted_issuers.iter().cloned().collect()),
        ..VerifyOptions::default()
    };
    let result = archive.verify(&options);
    let inspection = Inspection {
        verified: result.is_ok(),
        error: result
            .as_ref()
            .err()
            .map(|e| serde_json::json!({"kind": e.kind().code(), "message": e.to_string()})),
        issuer_trust_checked: options.trusted_issuers.is_some(),
        claims: result
            .as_ref()
            .ok()
            .cloned()
            .or_else(|| jwt::decode_unverified(&archive.token).ok()),
        artifact,
    };
    emit(output, &inspection, || {
        let mut text = inspection
            .artifact
            .as_ref()
            .map(crate::artifacts::Fetched::describe)
            .unwrap_or_default();
        text += &inspection
            .claims
            .as_ref()
            .map_or_else(|| "No readable claims.".to_owned(), describe);
        text.push_str(&crate::output::verdict(&result, inspection.issuer_trust_checked, 11).0);
        text
    })?;
    Ok(crate::output::verdict(&result, inspection.issuer_trust_checked, 11).1)
}

fn describe(claims: &Claims<ProviderMetadata>) -> String {
    let m = &claims.trellis;
    let targets: Vec<String> = m
        .target_hashes
        .iter()
        .map(|(t, h)| format!("  {t}: {h}"))
        .collect();
    format!(
        "Provider:  {}\nId:        {}\nIssuer:    {}\nContract:  {}\nVendor:    {}\nRevision:  {}\nVersion:   {}\nIssued:    {}\nExpires:   {}\nTargets:\n{}",
        m.name,
        claims.sub,
        claims.iss,
        m.contract_id,
        m.vendor,
        m.rev,
        m.ver.as_deref().unwrap_or("(none)"),
        rfc3339(claims.iat),
        claims.exp.map_or_else(|| "never".to_owned(), rfc3339),
        targets.join("\n"),
    )
}
