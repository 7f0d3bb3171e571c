//! `trellis keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use trellis_claims::invocation::{CtlScope, issue_control_credential};
use trellis_claims::keys::{KeyKind, generate, public_key_kind};

use crate::output::{Output, emit, read_any_key, write_seed};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a key pair and print its seed and public key, or write the
    /// seed to a key directory.
    Gen {
        /// Kind of key: account (issuer, A…), actor (M…), provider (V…),
        /// host (N…), cluster (C…), operator (control issuer, O…) or user
        /// (control client, U…).
        #[arg(value_parser = parse_kind)]
        kind: KeyKind,
        /// Write the seed to `<DIR>/<NAME>.<kind>.nk` (mode 0600) instead of
        /// printing it.
        #[arg(long, env = "TRELLIS_KEYS_DIR")]
        keys_dir: Option<PathBuf>,
        /// File name stem in the key directory. Defaults to the public key.
        #[arg(long, env = "TRELLIS_KEY_NAME", requires = "keys_dir")]
        name: Option<String>,
    },
    /// Print the public key of a seed, given as `S…` or as the path of a
    /// file holding one.
    Public {
        /// The seed or key file.
        key: String,
    },
    /// Issue a control credential: an operator vouches for a control
    /// client's user key, in one lattice, with a scope. Prints the JWT, to
    /// be given with `--ctl-key` as `--ctl-credential`.
    Credential {
        /// The operator's seed (`SO…`) or key file; hosts trust its public
        /// key with `--ctl-issuer`.
        #[arg(long, env = "TRELLIS_OPERATOR_KEY")]
        operator: String,
        /// The client's user public key (`U…`).
        #[arg(long)]
        user: String,
        /// The lattice the credential is valid in.
        #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
        lattice: String,
        /// `read` (ping, inventories, link and claims lists) or `full`.
        #[arg(long, default_value = "full")]
        scope: CtlScope,
        /// How long it is valid, e.g. `12h` or `30d`.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
}

fn parse_kind(s: &str) -> Result<KeyKind, String> {
    s.parse().map_err(|_| {
        "expected one of: account, actor, provider, host, cluster, operator, user".to_owned()
    })
}

#[derive(Serialize)]
struct Generated {
    kind: &'static str,
    public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
}

pub fn run(cmd: KeysCommand, output: Output) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Gen {
            kind,
            keys_dir,
            name,
        } => gen_key(kind, keys_dir, name, output),
        KeysCommand::Public { key } => public(&key, output),
        KeysCommand::Credential {
            operator,
            user,
            lattice,
            scope,
            ttl,
        } => {
            let operator = crate::output::read_key(&operator, KeyKind::Operator)?;
            let credential = issue_control_credential(&operator, &user, &lattice, scope, ttl)?;
            let report =
                serde_json::json!({ "credential": credential, "scope": scope, "lattice": lattice });
            emit(output, &report, || credential.clone())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn gen_key(
    kind: KeyKind,
    keys_dir: Option<PathBuf>,
    name: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let pair = generate(kind);
    let public_key = pair.public_key();
    let seed = pair.seed()?;
    let generated = match keys_dir {
        Some(dir) => {
            let stem = name.unwrap_or_else(|| public_key.clone());
            let path = dir.join(format!("{stem}.{kind}.nk"));
            write_seed(&path, &seed)?;
            Generated {
                kind: kind.as_str(),
                public_key,
                seed: None,
                path: Some(path),
            }
        }
        None => Generated {
            kind: kind.as_str(),
            public_key,
            seed: Some(seed),
            path: None,
        },
    };
    emit(output, &generated, || {
        match (&generated.seed, &generated.path) {
            (Some(seed), _) => format!("Public key: {}\nSeed:       {seed}", generated.public_key),
            (None, Some(path)) => format!(
                "Public key: {}\nSeed written to {}",
                generated.public_key,
                path.display()
            ),
            (None, None) => format!("Public key: {}", generated.public_key),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Public {
    kind: &'static str,
    public_key: String,
}

fn public(key: &str, output: Output) -> anyhow::Result<ExitCode> {
    let pair = read_any_key(key)?;
    let public_key = pair.public_key();
    let kind = public_key_kind(&public_key)?;
    let report = Public {
        kind: kind.as_str(),
        public_key,
    };
    emit(output, &report, || report.public_key.clone())?;
    Ok(ExitCode::SUCCESS)
}
