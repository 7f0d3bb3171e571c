//! `trellis claims`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;
use trellis_claims::actor::{ActorClaimsRequest, ActorMetadata, sign_actor, verify_actor};
use trellis_claims::jwt::{self, Claims};
use trellis_claims::keys::{KeyKind, KeyPair};
use trellis_claims::{VerifyOptions, wasm};

use crate::output::{Output, emit, read_key, rfc3339, secs_from_now};

#[derive(Debug, Subcommand)]
pub enum ClaimsCommand {
    /// Sign a WebAssembly module or component: embed claims naming it and
    /// the capabilities it may use.
    Sign(Box<SignArgs>),
    /// Print the claims embedded in a module and verify them; exits non-zero
    /// when they do not verify.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The module or component to sign.
    pub module: PathBuf,
    /// Issuer (account) key: a seed `SA…` or the path of a file holding one.
    /// Defaults to the development issuer `$TRELLIS_HOME/keys/dev.account.nk`
    /// (`TRELLIS_HOME` defaults to `~/.trellis`), created on first use.
    #[arg(long, env = "TRELLIS_ISSUER")]
    pub issuer: Option<String>,
    /// Actor key: a seed `SM…` or a file holding one. Without it the key is
    /// read from, or created in, `--keys-dir` as `<name>.actor.nk`, so the
    /// actor keeps its id from one signing to the next.
    #[arg(long, env = "TRELLIS_SUBJECT")]
    pub subject: Option<String>,
    /// Directory for actor keys created by signing. Defaults to
    /// `$TRELLIS_HOME/keys`.
    #[arg(long, env = "TRELLIS_KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,
    /// Human-friendly name of the actor.
    #[arg(long, env = "TRELLIS_ACTOR_NAME")]
    pub name: String,
    /// A capability contract id the actor may use, e.g. `wasi:keyvalue`.
    /// Repeat for several. None by default: deny by default.
    #[arg(long = "cap", env = "TRELLIS_CAPS", value_delimiter = ',')]
    pub caps: Vec<String>,
    /// A free-form tag. Repeat for several.
    #[arg(long = "tag", env = "TRELLIS_TAGS", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Revision number.
    #[arg(long, env = "TRELLIS_REV", default_value_t = 0)]
    pub rev: u32,
    /// Human-friendly version, e.g. 0.1.0.
    #[arg(long, env = "TRELLIS_VER")]
    pub ver: Option<String>,
    /// An alias other actors may call this one by.
    #[arg(long, env = "TRELLIS_CALL_ALIAS")]
    pub call_alias: Option<String>,
    /// Validity period, e.g. `30d` or `12h`. Never expires by default.
    #[arg(long, env = "TRELLIS_EXPIRES_IN", value_parser = humantime::parse_duration)]
    pub expires_in: Option<Duration>,
    /// Delay before the claims become valid, e.g. `1h`. Valid at once by default.
    #[arg(long, env = "TRELLIS_NOT_BEFORE_IN", value_parser = humantime::parse_duration)]
    pub not_before_in: Option<Duration>,
    /// Where to write the signed module. Defaults to `<module stem>.signed.wasm`
    /// beside the input.
    #[arg(long, short = 'd', env = "TRELLIS_DESTINATION")]
    pub destination: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The signed module or component.
    pub module: PathBuf,
    /// Public key of an issuer to trust. Repeat for several. Without it,
    /// the signature, hash and validity period are checked but any account
    /// issuer is accepted.
    #[arg(long = "trust", env = "TRELLIS_TRUSTED_ISSUERS", value_delimiter = ',')]
    pub trusted_issuers: Vec<String>,
}

pub fn run(cmd: ClaimsCommand, output: Output) -> anyhow::Result<ExitCode> {
    match cmd {
        ClaimsCommand::Sign(args) => sign(*args, output),
        ClaimsCommand::Inspect(args) => inspect(args, output),
    }
}

fn subject_key(args: &SignArgs) -> anyhow::Result<(KeyPair, Option<PathBuf>)> {
    if let Some(subject) = &args.subject {
        return Ok((read_key(subject, KeyKind::Actor)?, None));
    }
    let dir = args.keys_dir.clone().unwrap_or_else(crate::dev::keys_dir);
    let path = dir.join(format!("{}.actor.nk", args.name));
    let pair = crate::dev::key_in(&dir, &args.name, KeyKind::Actor)?;
    Ok((pair, Some(path)))
}

#[derive(Serialize)]
struct Signed<'a> {
    destination: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_key_file: Option<&'a Path>,
    claims: &'a Claims<ActorMetadata>,
}

fn sign(args: SignArgs, output: Output) -> anyhow::Result<ExitCode> {
    let module = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let issuer = crate::dev::issuer_or_dev(args.issuer.as_deref())?;
    let (subject, key_file) = subject_key(&args)?;
    let request = ActorClaimsRequest {
        name: args.name.clone(),
        caps: args.caps.clone(),
        tags: args.tags.clone(),
        rev: args.rev,
        ver: args.ver.clone(),
        call_alias: args.call_alias.clone(),
        not_before: args.not_before_in.map(secs_from_now),
        expires: args.expires_in.map(secs_from_now),
    };
    let (signed, claims) = sign_actor(&module, &request, &issuer, &subject)?;
    let destination = args.destination.clone().unwrap_or_else(|| {
        let stem = args
            .module
            .file_stem()
            .map_or_else(|| "actor".into(), |s| s.to_string_lossy().into_owned());
        args.module.with_file_name(format!("{stem}.signed.wasm"))
    });
    std::fs::write(&destination, &signed)
        .with_context(|| format!("writing {}", destination.display()))?;
    let report = Signed {
        destination: &destination,
        subject_key_file: key_file.as_deref(),
        claims: &claims,
    };
    emit(output, &report, || {
        let mut text = format!(
            "Signed {} -> {}\n{}",
            args.module.display(),
            destination.display(),
            describe(&claims)
        );
        if let Some(file) = &key_file {
            text.push_str(&format!("\nActor key:    {}", file.display()));
        }
        text
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Inspection {
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorReport>,
    issuer_trust_checked: bool,
    actual_module_hash: String,
    claims: Option<Claims<ActorMetadata>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact: Option<crate::artifacts::Fetched>,
}

#[derive(Serialize)]
struct ErrorReport {
    kind: &'static str,
    message: String,
}

fn inspect(args: InspectArgs, output: Output) -> anyhow::Result<ExitCode> {
    let module = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    inspect_module(&module, &args.trusted_issuers, None, output)
}

/// Shows the claims of `module`, verified against `trusted_issuers` (any
/// account issuer when empty), with where it came from when it was
/// fetched; the exit code says whether they verified.
pub(crate) fn inspect_module(
    module: &[u8],
    trusted_issuers: &[String],
    artifact: Option<crate::artifacts::Fetched>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let token = wasm::extract_token(module)?;
    let shown: Option<Claims<ActorMetadata>> = token
        .as_deref()
        .and_then(|t| jwt::decode_unverified(t).ok());
    let options = VerifyOptions {
        trusted_issuers: (!trusted_issuers.is_empty())
            .then(|| trusted_issuers.iter().cloned().collect()),
        ..VerifyOptions::default()
    };
    let result = verify_actor(module, &options);
    let inspection = Inspection {
        verified: result.is_ok(),
        error: result.as_ref().err().map(|e| ErrorReport {
            kind: e.kind().code(),
            message: e.to_string(),
        }),
        issuer_trust_checked: options.trusted_issuers.is_some(),
        actual_module_hash: wasm::module_hash(module)?,
        claims: result.as_ref().ok().cloned().or(shown),
        artifact,
    };
    emit(output, &inspection, || {
        let mut text = inspection
            .artifact
            .as_ref()
            .map(crate::artifacts::Fetched::describe)
            .unwrap_or_default();
        text += &match &inspection.claims {
            Some(claims) => describe(claims),
            None => "No claims found.".to_owned(),
        };
        text.push_str(&format!(
            "\nModule hash:  {}",
            inspection.actual_module_hash
        ));
        text.push_str(&crate::output::verdict(&result, inspection.issuer_trust_checked, 14).0);
        text
    })?;
    Ok(crate::output::verdict(&result, inspection.issuer_trust_checked, 14).1)
}

fn describe(claims: &Claims<ActorMetadata>) -> String {
    let m = &claims.trellis;
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "Actor:        {}\nActor id:     {}\nIssuer:       {}\nCapabilities: {}\nTags:         {}\nRevision:     {}\nVersion:      {}\nCall alias:   {}\nIssued:       {}\nNot before:   {}\nExpires:      {}\nClaimed hash: {}",
        m.name,
        claims.sub,
        claims.iss,
        list(&m.caps),
        list(&m.tags),
        m.rev,
        m.ver.as_deref().unwrap_or("(none)"),
        m.call_alias.as_deref().unwrap_or("(none)"),
        rfc3339(claims.iat),
        claims
            .nbf
            .map_or_else(|| "(issue time)".to_owned(), rfc3339),
        claims.exp.map_or_else(|| "never".to_owned(), rfc3339),
        m.module_hash,
    )
}
