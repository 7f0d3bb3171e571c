//! `trellis build`: build actors for `wasm32-wasip2` with cargo and sign
//! each with exactly the capabilities its `Cargo.toml` declares:
//!
//! ```toml
//! [package.metadata.trellis]
//! name = "kvcounter"                          # defaults to the package name
//! capabilities = ["wasi:http", "wasi:keyvalue"]
//! ```
//!
//! Packages without a `[package.metadata.trellis]` table are not signed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use trellis_claims::actor::{ActorClaimsRequest, sign_actor};
use trellis_claims::keys::KeyKind;

use crate::output::{Output, emit};

/// The target actors are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The package's or workspace's `Cargo.toml`. A workspace builds every
    /// member that has a `[package.metadata.trellis]` table.
    #[arg(long, env = "TRELLIS_MANIFEST_PATH", default_value = "Cargo.toml")]
    pub manifest_path: PathBuf,
    /// Where the signed components go. Defaults to `build/` beside the
    /// workspace's `Cargo.toml`.
    #[arg(long, env = "TRELLIS_OUT_DIR")]
    pub out_dir: Option<PathBuf>,
    /// Issuer (account) key: a seed `SA…` or a file holding one. Defaults
    /// to the development issuer `$TRELLIS_HOME/keys/dev.account.nk`,
    /// created on first use.
    #[arg(long, env = "TRELLIS_ISSUER")]
    pub issuer: Option<String>,
    /// Directory of the actor keys (`<name>.actor.nk`, created on first
    /// use, so each actor keeps its id). Defaults to `$TRELLIS_HOME/keys`.
    #[arg(long, env = "TRELLIS_KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,
    /// Cargo profile.
    #[arg(long, default_value = "release")]
    pub profile: String,
}

/// `[package.metadata.trellis]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorMetadata {
    name: Option<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    rev: u32,
}

#[derive(Debug, Serialize)]
struct Built {
    name: String,
    actor_id: String,
    capabilities: Vec<String>,
    path: PathBuf,
}

struct Selected {
    package: String,
    artifact: String,
    version: String,
    metadata: ActorMetadata,
}

pub fn run(args: BuildArgs, output: Output) -> anyhow::Result<ExitCode> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&args.manifest_path)
        .no_deps()
        .exec()
        .with_context(|| format!("reading {}", args.manifest_path.display()))?;
    let manifest = std::fs::canonicalize(&args.manifest_path)
        .with_context(|| format!("reading {}", args.manifest_path.display()))?;
    let only_one = metadata
        .packages
        .iter()
        .any(|p| p.manifest_path.as_std_path() == manifest);
    let mut selected = Vec::new();
    for package in &metadata.packages {
        if only_one && package.manifest_path.as_std_path() != manifest {
            continue;
        }
        let Some(table) = package.metadata.get("trellis") else {
            continue;
        };
        let meta: ActorMetadata = serde_json::from_value(table.clone()).with_context(|| {
            format!(
                "[package.metadata.trellis] of {} (keys: name, capabilities, tags, rev)",
                package.name
            )
        })?;
        let Some(lib) = package
            .targets
            .iter()
            .find(|t| t.crate_types.iter().any(|c| c.to_string() == "cdylib"))
        else {
            bail!(
                "{} has no cdylib target: add `[lib] crate-type = [\"cdylib\"]` to its Cargo.toml",
                package.name
            );
        };
        selected.push(Selected {
            package: package.name.to_string(),
            artifact: lib.name.replace('-', "_"),
            version: package.version.to_string(),
            metadata: meta,
        });
    }
    if selected.is_empty() {
        bail!(
            "no package in {} has a [package.metadata.trellis] table naming its capabilities",
            args.manifest_path.display()
        );
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--target", WASM_TARGET, "--profile", &args.profile])
        .arg("--manifest-path")
        .arg(&args.manifest_path);
    for s in &selected {
        command.args(["-p", &s.package]);
    }
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); is the {WASM_TARGET} target installed? (rustup target add {WASM_TARGET})"
        );
    }

    let profile_dir = if args.profile == "dev" {
        "debug"
    } else {
        args.profile.as_str()
    };
    let artifacts = metadata
        .target_directory
        .as_std_path()
        .join(WASM_TARGET)
        .join(profile_dir);
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| metadata.workspace_root.as_std_path().join("build"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let issuer = crate::dev::issuer_or_dev(args.issuer.as_deref())?;
    let keys_dir = args.keys_dir.clone().unwrap_or_else(crate::dev::keys_dir);
    let mut built = Vec::new();
    for s in selected {
        built.push(sign(&s, &artifacts, &out_dir, &issuer, &keys_dir)?);
    }
    emit(output, &built, || {
        let mut text = String::new();
        for b in &built {
            text.push_str(&format!(
                "{} -> {}\n  actor id:     {}\n  capabilities: {}\n",
                b.name,
                b.path.display(),
                b.actor_id,
                if b.capabilities.is_empty() {
                    "(none)".to_owned()
                } else {
                    b.capabilities.join(", ")
                }
            ));
        }
        text.trim_end().to_owned()
    })?;
    Ok(ExitCode::SUCCESS)
}

fn sign(
    s: &Selected,
    artifacts: &Path,
    out_dir: &Path,
    issuer: &trellis_claims::keys::KeyPair,
    keys_dir: &Path,
) -> anyhow::Result<Built> {
    let name = s.metadata.name.clone().unwrap_or_else(|| s.package.clone());
    let wasm_path = artifacts.join(format!("{}.wasm", s.artifact));
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let subject = crate::dev::key_in(keys_dir, &name, KeyKind::Actor)?;
    let request = ActorClaimsRequest {
        name: name.clone(),
        caps: s.metadata.capabilities.clone(),
        tags: s.metadata.tags.clone(),
        rev: s.metadata.rev,
        ver: Some(s.version.clone()),
        ..ActorClaimsRequest::default()
    };
    let (signed, claims) = sign_actor(&wasm, &request, issuer, &subject)?;
    let path = out_dir.join(format!("{name}.signed.wasm"));
    std::fs::write(&path, signed).with_context(|| format!("writing {}", path.display()))?;
    Ok(Built {
        name,
        actor_id: claims.sub,
        capabilities: s.metadata.capabilities.clone(),
        path,
    })
}
