//! `kmsctl`: the command-line client of kmsd. Output is JSON, one document
//! per command, stable for scripts, or with `--output table` the same
//! document as a table. Exit codes: 0 success, 2 usage error, 3
//! authentication or authorization failure, 1 any other failure.

mod iam;
mod output;
mod progress;

/// The same allocator as kmsd, so that `kmsctl bench`'s baseline server and
/// kmsd are compared on equal terms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::future::Future;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use kmsd::client::{self, AuditClient, BearerAuth, IdentityClient, KmsClient};
use kmsd::pb;
use serde_json::{Value, json};

use crate::iam::{IamCmd, run_iam};
use crate::output::{Output, print};

#[derive(Debug, Parser)]
#[command(name = "kmsctl", version, about = "Command-line client for kmsd")]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

/// Connection options. Holds a secret, so its `Debug` is written by hand.
#[derive(Args)]
struct Conn {
    /// Profile in the credentials file.
    #[arg(long, global = true, env = "KMS_PROFILE", default_value = "default")]
    profile: String,
    /// Credentials file (INI, as `kmsd dev` writes). Default:
    /// ./kmsd-data/credentials if it exists, else ~/.config/kmsctl/credentials.
    #[arg(long, global = true, env = "KMS_CREDENTIALS_FILE")]
    credentials: Option<PathBuf>,
    /// Endpoint, overriding the profile's.
    #[arg(long, global = true, env = "KMS_ENDPOINT")]
    endpoint: Option<String>,
    /// Access key id, overriding the profile's (with the secret below).
    #[arg(long, global = true, env = "KMS_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// Secret access key; prefer the environment variable to the flag.
    #[arg(
        long,
        global = true,
        env = "KMS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    #[arg(long, global = true, env = "KMS_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// endpoint, overriding
    /// the profile's ca_file.
    #[arg(long, global = true, env = "KMS_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Output format: json (stable, for scripts; the default) or table
    /// (the default of `bench`).
    #[arg(long, short = 'o', global = true, env = "KMS_OUTPUT", value_enum)]
    output: Option<Output>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("profile", &self.profile)
            .field("credentials", &self.credentials)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .field("ca_file", &self.ca_file)
            .field("output", &self.output)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Who the credentials belong to (GetCallerIdentity).
    Whoami,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Manage keys.
    ///
    /// KEY is a key id or key ARN. `describe` also takes an alias
    /// (alias/NAME or an alias ARN); the other commands, as in AWS KMS, do
    /// not: they name the key itself, not whatever an alias points to at
    /// the moment.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage aliases.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Read and replace key policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Create, list, retire and revoke grants.
    #[command(subcommand)]
    Grant(GrantCmd),
    /// Search, verify and export the audit trail; read key configuration history.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Load a kmsd endpoint and report requests/s and latency percentiles,
    /// beside a bare tonic baseline measured in the same run.
    Bench(BenchArgs),
    /// Users, groups, roles, identity policies, MFA and AssumeRole.
    #[command(subcommand)]
    Iam(IamCmd),
    /// Encrypt a file (or - for stdin) of any size in the envelope format:
    /// one data key from KMS, then local AES-256-GCM in segments.
    Encrypt {
        /// Key id, ARN or alias.
        #[arg(long)]
        key: String,
        /// Encryption context entries, k=v (stored in the header).
        #[arg(long = "context", value_parser = parse_kv)]
        context: Vec<(String, String)>,
        /// Plaintext bytes per segment (1024 to 16777216).
        #[arg(long, default_value_t = kmsd::envelope::DEFAULT_SEGMENT,
              value_parser = clap::value_parser!(u32).range(
                  i64::from(kmsd::envelope::MIN_SEGMENT)..=i64::from(kmsd::envelope::MAX_SEGMENT)))]
        segment_size: u32,
        /// No progress bar (one is drawn on a terminal for inputs of 16 MiB or more).
        #[arg(long)]
        no_progress: bool,
        /// Input file, or -.
        input: PathBuf,
        /// Output file, or -.
        #[arg(value_name = "OUTPUT")]
        out: PathBuf,
    },
    /// Decrypt an envelope. To a file, all or nothing: the plaintext is
    /// written to a temporary file that replaces OUT only once every
    /// segment has been authenticated.
    Decrypt {
        /// Entries the envelope's context must contain, k=v.
        #[arg(long = "context", value_parser = parse_kv)]
        context: Vec<(String, String)>,
        /// No progress bar (one is drawn on a terminal for inputs of 16 MiB or more).
        #[arg(long)]
        no_progress: bool,
        /// Input file, or -.
        input: PathBuf,
        /// Output file, or -.
        #[arg(value_name = "OUTPUT")]
        out: PathBuf,
    },
    /// Encrypt up to 4096 bytes with a key (KMS Encrypt); writes the ciphertext blob.
    EncryptBlob {
        /// Key id, ARN or alias.
        #[arg(long)]
        key: String,
        /// Encryption context entries, k=v.
        #[arg(long = "context", value_parser = parse_kv)]
        context: Vec<(String, String)>,
        /// Grant tokens to present; repeatable.
        #[arg(long = "grant-token")]
        grant_tokens: Vec<String>,
        /// Input file, or - for stdin.
        #[arg(long = "in", default_value = "-")]
        input: PathBuf,
        /// Output file, or - for stdout.
        #[arg(long = "out", default_value = "-")]
        out: PathBuf,
    },
    /// Decrypt a ciphertext blob (KMS Decrypt).
    DecryptBlob {
        /// Encryption context entries, k=v.
        #[arg(long = "context", value_parser = parse_kv)]
        context: Vec<(String, String)>,
        /// Grant tokens to present; repeatable.
        #[arg(long = "grant-token")]
        grant_tokens: Vec<String>,
        /// Input file, or - for stdin.
        #[arg(long = "in", default_value = "-")]
        input: PathBuf,
        /// Output file, or - for stdout.
        #[arg(long = "out", default_value = "-")]
        out: PathBuf,
    },
    /// Generate a data key: prints its plaintext and wrapped form, base64.
    DataKey {
        /// Key id, ARN or alias.
        #[arg(long)]
        key: String,
        /// Encryption context entries, k=v.
        #[arg(long = "context", value_parser = parse_kv)]
        context: Vec<(String, String)>,
        /// Omit the plaintext (GenerateDataKeyWithoutPlaintext).
        #[arg(long)]
        without_plaintext: bool,
    },
    /// Decrypt a ciphertext blob and encrypt it under another key, inside
    /// kmsd (the plaintext never leaves it).
    ReEncryptBlob {
        /// The destination key: id, ARN or alias.
        #[arg(long)]
        key: String,
        /// The source key, if you want it checked.
        #[arg(long)]
        source_key: Option<String>,
        /// The blob's encryption context, k=v.
        #[arg(long = "source-context", value_parser = parse_kv)]
        source_context: Vec<(String, String)>,
        /// The new blob's encryption context, k=v.
        #[arg(long = "context", value_parser = parse_kv)]
        context: Vec<(String, String)>,
        /// Grant tokens to present; repeatable.
        #[arg(long = "grant-token")]
        grant_tokens: Vec<String>,
        /// Input file, or - for stdin.
        #[arg(long = "in", default_value = "-")]
        input: PathBuf,
        /// Output file, or - for stdout.
        #[arg(long = "out", default_value = "-")]
        out: PathBuf,
    },
    /// Random bytes from kmsd's RNG (GenerateRandom), base64 in JSON, or raw with --out.
    Random {
        /// How many bytes (1 to 1024).
        #[arg(long, default_value_t = 32)]
        bytes: i32,
        /// Write the raw bytes to this file (or - for stdout) instead.
        #[arg(long = "out")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Create a key.
    Create {
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// A key administrator (may manage, not use): a principal ARN; repeatable.
        #[arg(long = "admin")]
        admins: Vec<String>,
        /// A key user (may use, not manage): a principal ARN; repeatable.
        #[arg(long = "user")]
        users: Vec<String>,
        /// A key policy document (file, or - for stdin) instead of the default.
        #[arg(long)]
        policy_file: Option<PathBuf>,
        /// Accept a policy that would lock the caller out of PutKeyPolicy.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
    },
    /// Describe a key.
    Describe { key: String },
    /// List the account's keys.
    List,
    /// Change a key's description.
    UpdateDescription { key: String, description: String },
    /// Enable a key.
    Enable { key: String },
    /// Disable a key.
    Disable { key: String },
    /// Schedule a key's destruction after 7 to 30 days. Shows the key and
    /// the date and asks for confirmation on a terminal.
    ScheduleDeletion {
        key: String,
        /// Waiting period in days (7 to 30).
        #[arg(long, default_value_t = 30)]
        days: i32,
        /// Do not ask; needed when stdin is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Cancel a scheduled deletion (the key becomes Disabled).
    CancelDeletion { key: String },
    /// Rotate the key material now.
    Rotate { key: String },
    /// Turn on automatic rotation.
    EnableRotation {
        key: String,
        /// Days between rotations (90 to 2560; default 365).
        #[arg(long)]
        period_days: Option<i32>,
    },
    /// Turn off automatic rotation.
    DisableRotation { key: String },
    /// Whether and when the key rotates.
    RotationStatus { key: String },
    /// The key's completed rotations.
    ListRotations { key: String },
    /// Add or overwrite tags: KEY k=v [k=v ...].
    Tag {
        key: String,
        #[arg(required = true, value_parser = parse_kv)]
        tags: Vec<(String, String)>,
    },
    /// Remove tags by name: KEY k [k ...].
    Untag {
        key: String,
        #[arg(required = true)]
        tag_keys: Vec<String>,
    },
    /// List a key's tags.
    ListTags { key: String },
}

#[derive(Debug, Subcommand)]
enum AliasCmd {
    /// Create an alias for a key.
    Create { name: String, key: String },
    /// Point an alias at another key.
    Update { name: String, key: String },
    /// List the account's aliases (or one key's).
    List {
        #[arg(long)]
        key: Option<String>,
    },
    /// Delete an alias.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Print a key's policy document.
    Get { key: String },
    /// The names of a key's policies (always `default`).
    List { key: String },
    /// Replace a key's policy with a document from a file (or - for stdin).
    Put {
        key: String,
        file: PathBuf,
        /// Accept a policy that would lock the caller out of PutKeyPolicy.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
    },
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// An operation (encrypt, decrypt, generate-data-key,
    /// generate-data-key-without-plaintext, re-encrypt, describe-key), or a
    /// weighted mix such as encrypt=3,decrypt=1.
    #[arg(long, default_value = "encrypt")]
    op: String,
    /// Plaintext (and baseline payload) size in bytes, 1 to 4096 (Encrypt's
    /// limit).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    payload_size: usize,
    /// Calls in flight.
    #[arg(short = 'c', long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
    /// HTTP/2 connections shared by the calls in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    connections: usize,
    /// Seconds to run each phase (ignored with --requests).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop each phase after this many requests instead.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,
    /// The key to use; by default one is created for the run and scheduled
    /// for deletion (7 days) afterwards.
    #[arg(long)]
    key: Option<String>,
    /// Encryption context entries, k=v.
    #[arg(long = "context", value_parser = parse_kv)]
    context: Vec<(String, String)>,
    /// Measure only the baseline.
    #[arg(long)]
    baseline: bool,
    /// Skip the baseline.
    #[arg(long, conflicts_with = "baseline")]
    no_baseline: bool,
    /// Serve the baseline over TLS (automatic when the endpoint is https://).
    #[arg(long, conflicts_with = "no_baseline")]
    tls: bool,
    /// Alternate the baseline and kmsd phases this many times and report
    /// the medians: on a shared machine one phase of each can catch a slow
    /// or a fast moment and skew the ratio.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Events, newest first.
    Lookup {
        /// Only events that touched this key (id or ARN).
        #[arg(long)]
        key: Option<String>,
        /// Only events by this principal ARN.
        #[arg(long)]
        principal: Option<String>,
        /// Only this operation (e.g. Decrypt).
        #[arg(long)]
        operation: Option<String>,
        /// Only this outcome: allowed, denied or failed.
        #[arg(long)]
        outcome: Option<String>,
        /// From this time (RFC 3339).
        #[arg(long)]
        start: Option<String>,
        /// Up to this time (RFC 3339).
        #[arg(long)]
        end: Option<String>,
        /// At most this many events (newest first).
        #[arg(long, default_value_t = 50)]
        limit: i32,
        /// Continue where an earlier lookup stopped: its NextMarker.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Walk the hash chain and report the first broken link.
    Verify,
    /// A key's configuration history, or its configuration at a time.
    History {
        key: String,
        /// RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Every visible event as JSON lines (CloudTrail-like), oldest first.
    Export,
}

#[derive(Debug, Subcommand)]
enum GrantCmd {
    /// Let a principal (of any account) use a key for some operations.
    Create {
        /// Key id or ARN.
        key: String,
        /// The grantee's principal ARN.
        #[arg(long)]
        grantee: String,
        /// An operation (Encrypt, Decrypt, GenerateDataKey,
        /// GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo,
        /// CreateGrant, RetireGrant, DescribeKey); repeatable.
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// Who may retire the grant.
        #[arg(long)]
        retiring_principal: Option<String>,
        /// The call's context must contain this pair; repeatable.
        #[arg(long = "context-subset", value_parser = parse_kv)]
        subset: Vec<(String, String)>,
        /// The call's context must be exactly these pairs; repeatable.
        #[arg(long = "context-equals", value_parser = parse_kv)]
        equals: Vec<(String, String)>,
        /// A name (repeating a request with the same name returns the same grant).
        #[arg(long)]
        name: Option<String>,
    },
    /// List a key's grants.
    List { key: String },
    /// List the grants a principal may retire.
    ListRetirable { retiring_principal: String },
    /// Retire a grant, by token or by key ARN and grant id.
    Retire {
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        grant_id: Option<String>,
    },
    /// Revoke a grant.
    Revoke { key: String, grant_id: String },
}

fn read_text(p: &PathBuf) -> anyhow::Result<String> {
    let bytes = read_input(p)?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

/// Shows what a deletion would destroy and when, and asks. Refuses when
/// nobody can be asked (stdin not a terminal) unless `--yes` was given.
async fn confirm_deletion(kms: &mut KmsClient, key: &str, days: i32) -> anyhow::Result<()> {
    // ScheduleKeyDeletion takes no alias (as in AWS KMS: what an alias
    // names can change between reading it and deleting). Say so before
    // asking, rather than after a "y", and name the key to pass instead
    // if the alias can be read.
    if kmsd::kms::KeyRef::names_alias(key) {
        let target = kms
            .describe_key(pb::DescribeKeyRequest {
                key_id: key.to_owned(),
                grant_tokens: vec![],
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().key_metadata)
            .map_or_else(String::new, |m| format!(": {key} names {}", m.arn));
        return Err(UsageError(format!(
            "schedule-deletion needs the key id or key ARN, not an alias{target}; nothing was changed"
        ))
        .into());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "schedule-deletion asks for confirmation; stdin is not a terminal, so pass --yes"
                .into(),
        )
        .into());
    }
    let m = kms
        .describe_key(pb::DescribeKeyRequest {
            key_id: key.to_owned(),
            grant_tokens: vec![],
        })
        .await?
        .into_inner()
        .key_metadata
        .unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let date = (now + time::Duration::days(i64::from(days)))
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    eprintln!("Key:         {}", m.arn);
    if !m.description.is_empty() {
        eprintln!("Description: {}", output::printable(&m.description));
    }
    eprintln!("State:       {}", key_state_name(m.key_state));
    eprintln!(
        "It will be destroyed, with every ciphertext made under it, on or about {date} ({days} days), unless you cancel the deletion before then."
    );
    eprint!("Schedule the deletion? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        anyhow::bail!("not confirmed; nothing was changed")
    }
}

/// A mistake in how kmsctl was invoked (exit code 2), found after parsing.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not key=value"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_format(cli.conn.output.unwrap_or(match cli.command {
        Command::Bench(_) => Output::Table,
        _ => Output::Json,
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmsctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A refusal from kmsd, directly or inside an envelope error.
            let refusal = e
                .downcast_ref::<tonic::Status>()
                .map(client::ApiError::from)
                .or_else(|| match e.downcast_ref::<client::EnvelopeError>() {
                    Some(client::EnvelopeError::Kms(a)) => Some(a.clone()),
                    _ => e.downcast_ref::<client::ApiError>().cloned(),
                });
            match refusal {
                Some(a) => {
                    // The daemon's message may quote names others chose.
                    eprintln!("kmsctl: {}: {}", a.code, output::printable(&a.message));
                    match a.grpc_code {
                        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                            ExitCode::from(3)
                        }
                        _ => ExitCode::FAILURE,
                    }
                }
                None if e.downcast_ref::<UsageError>().is_some() => {
                    eprintln!("kmsctl: {e:#}");
                    ExitCode::from(2)
                }
                None => {
                    eprintln!("kmsctl: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn credentials_path(conn: &Conn) -> anyhow::Result<PathBuf> {
    Ok(match &conn.credentials {
        Some(p) => p.clone(),
        None => {
            let local = PathBuf::from("kmsd-data/credentials");
            if local.exists() {
                local
            } else {
                let home = std::env::var_os("HOME")
                    .ok_or_else(|| anyhow!("HOME is not set; pass --credentials"))?;
                PathBuf::from(home).join(".config/kmsctl/credentials")
            }
        }
    })
}

/// Where and as whom a command connects.
struct Target {
    endpoint: String,
    auth: BearerAuth,
    /// The CA certificate to trust for an `https://` endpoint: its file,
    /// and what it holds (PEM).
    ca_file: Option<PathBuf>,
    ca_pem: Option<Vec<u8>>,
}

/// The endpoint, credentials and CA to use, with the credentials file
/// read at most once: `--access-key-id` and `--secret-access-key` (or
/// `KMS_ACCESS_KEY_ID`, `KMS_SECRET_ACCESS_KEY`, `KMS_SESSION_TOKEN`) if
/// given, else the profile's; `--endpoint` (`KMS_ENDPOINT`) and
/// `--ca-file` (`KMS_CA_FILE`) override the profile's `endpoint` and
/// `ca_file`.
fn resolve(conn: &Conn) -> anyhow::Result<Target> {
    if conn.access_key_id.is_some() != conn.secret_access_key.is_some()
        || (conn.session_token.is_some() && conn.access_key_id.is_none())
    {
        // Half an override must not silently fall back to the profile's
        // identity.
        return Err(UsageError(
            "give both the access key id and the secret access key (flags or KMS_ACCESS_KEY_ID and KMS_SECRET_ACCESS_KEY), or neither; a session token needs both".into(),
        )
        .into());
    }
    let load = || credentials_path(conn).and_then(|p| Ok(kmsd::profile::load(&p, &conn.profile)?));
    let (profile, auth) = match (&conn.access_key_id, &conn.secret_access_key) {
        (Some(id), Some(secret)) => {
            // The profile only fills in what the environment left out, if
            // it can be read at all.
            let profile = (conn.endpoint.is_none() || conn.ca_file.is_none())
                .then(load)
                .and_then(Result::ok);
            (
                profile,
                BearerAuth::new(id, secret, conn.session_token.as_deref())?,
            )
        }
        _ => {
            let p = load()?;
            let auth = BearerAuth::new(
                &p.access_key_id,
                &p.secret_access_key,
                p.session_token.as_ref().map(|t| t.as_str()),
            )?;
            (Some(p), auth)
        }
    };
    let endpoint = match (&conn.endpoint, &profile) {
        (Some(e), _) => e.clone(),
        (None, Some(p)) => p.endpoint.clone(),
        (None, None) => {
            return Err(anyhow!(
                "with credentials from the environment, give --endpoint or KMS_ENDPOINT"
            ));
        }
    };
    let ca_file = conn
        .ca_file
        .clone()
        .or_else(|| profile.as_ref().and_then(|p| p.ca_file.clone()));
    // Read once the credentials are settled, so that their errors come first.
    let ca_pem = ca_file.as_deref().map(client::read_ca).transpose()?;
    Ok(Target {
        endpoint,
        auth,
        ca_file,
        ca_pem,
    })
}

/// A command's one connection, every client on it, and where it goes.
struct Session {
    kms: KmsClient,
    iam: IdentityClient,
    audit: AuditClient,
    target: Target,
}

async fn connect(conn: &Conn) -> anyhow::Result<Session> {
    let target = resolve(conn)?;
    let channel = client::connect_with(&target.endpoint, target.ca_pem.as_deref()).await?;
    let audit = pb::audit_service_client::AuditServiceClient::with_interceptor(
        channel.clone(),
        target.auth.clone(),
    );
    let (kms, iam) = client::clients(channel, target.auth.clone());
    Ok(Session {
        kms,
        iam,
        audit,
        target,
    })
}

fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(kmsd::clock::Timestamp(t.seconds * 1000).to_rfc3339())
    })
}

fn metadata_json(m: &pb::KeyMetadata) -> Value {
    json!({
        "KeyId": m.key_id,
        "Arn": m.arn,
        "AWSAccountId": m.aws_account_id,
        "CreationDate": ts(m.creation_date.as_ref()),
        "Enabled": m.enabled,
        "Description": m.description,
        "KeyState": key_state_name(m.key_state),
        "DeletionDate": ts(m.deletion_date.as_ref()),
        "PendingDeletionWindowInDays": m.pending_deletion_window_in_days,
        "KeyRotationEnabled": m.key_rotation_enabled,
        "RotationPeriodInDays": m.rotation_period_in_days,
        "CurrentKeyMaterialVersion": m.current_key_material_version,
    })
}

/// AWS's spelling of a key state (`PendingDeletion`, not `KEY_STATE_PENDING_DELETION`).
fn key_state_name(v: i32) -> &'static str {
    match pb::KeyState::try_from(v) {
        Ok(pb::KeyState::Enabled) => "Enabled",
        Ok(pb::KeyState::Disabled) => "Disabled",
        Ok(pb::KeyState::PendingDeletion) => "PendingDeletion",
        Ok(pb::KeyState::Creating) => "Creating",
        Ok(pb::KeyState::PendingImport) => "PendingImport",
        Ok(pb::KeyState::Unavailable) => "Unavailable",
        Ok(pb::KeyState::Unspecified) | Err(_) => "Unknown",
    }
}

/// Every page of a paged List call: `page(marker)` returns one page's
/// items, its next marker and whether it was truncated.
async fn all_pages<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>, bool), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    // Markers already followed: one that comes back (at once or after a
    // cycle) would page for ever.
    let mut followed = std::collections::HashSet::new();
    loop {
        let (items, next, truncated) = page(marker.clone()).await?;
        all.extend(items);
        match next {
            Some(m) if truncated => {
                if !followed.insert(m.clone()) {
                    anyhow::bail!("the daemon answered a page marker it had given before; stopping")
                }
                marker = Some(m);
            }
            _ => return Ok(all),
        }
    }
}

fn read_input(p: &PathBuf) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    if p.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut buf)?;
    } else {
        buf = zeroize::Zeroizing::new(
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        );
    }
    Ok(buf)
}

/// Writes a plaintext or ciphertext to stdout or to a file readable only by
/// its owner.
fn write_output(p: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if p.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
    } else {
        // Written whole to a 0600 file and renamed over `p`: an existing,
        // wider-open file never receives the bytes, and a failed write
        // leaves it as it was.
        kmsd::private_file::write_atomic(p, bytes)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// The `k=v` entries of a context option as a map; a key given twice is a
/// usage error, not one value silently dropped.
fn context(kv: Vec<(String, String)>) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::with_capacity(kv.len());
    for (k, v) in kv {
        if map.contains_key(&k) {
            return Err(UsageError(format!(
                "context key '{}' is given twice",
                output::printable(&k)
            ))
            .into());
        }
        map.insert(k, v);
    }
    Ok(map)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "kmsctl", &mut script);
        return match std::io::stdout().lock().write_all(&script) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        };
    }
    let Session {
        mut kms,
        mut iam,
        audit,
        target,
    } = connect(&cli.conn).await?;
    let endpoint = target.endpoint.as_str();
    match cli.command {
        Command::Completions { .. } => Ok(()),
        Command::Whoami => {
            let r = iam
                .get_caller_identity(pb::GetCallerIdentityRequest {})
                .await?
                .into_inner();
            print(&json!({"Account": r.account, "Arn": r.arn, "UserId": r.user_id}))
        }
        Command::Key(cmd) => match cmd {
            KeyCmd::Create {
                description,
                admins,
                users,
                policy_file,
                bypass_policy_lockout_safety_check,
            } => {
                let policy = policy_file.as_ref().map(read_text).transpose()?;
                let r = kms
                    .create_key(pb::CreateKeyRequest {
                        description,
                        policy,
                        key_administrators: admins,
                        key_users: users,
                        bypass_policy_lockout_safety_check,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                print(&json!({"KeyMetadata": r.key_metadata.as_ref().map(metadata_json)}))
            }
            KeyCmd::Describe { key } => {
                let r = kms
                    .describe_key(pb::DescribeKeyRequest {
                        key_id: key,
                        grant_tokens: vec![],
                    })
                    .await?
                    .into_inner();
                print(&json!({"KeyMetadata": r.key_metadata.as_ref().map(metadata_json)}))
            }
            KeyCmd::List => {
                let keys = all_pages(|marker| {
                    let mut kms = kms.clone();
                    async move {
                        let r = kms
                            .list_keys(pb::ListKeysRequest {
                                limit: Some(1000),
                                marker,
                            })
                            .await?
                            .into_inner();
                        Ok((r.keys, r.next_marker, r.truncated))
                    }
                })
                .await?;
                let keys: Vec<Value> = keys
                    .iter()
                    .map(|k| json!({"KeyId": k.key_id, "KeyArn": k.key_arn}))
                    .collect();
                print(&json!({"Keys": keys}))
            }
            KeyCmd::UpdateDescription { key, description } => {
                kms.update_key_description(pb::UpdateKeyDescriptionRequest {
                    key_id: key,
                    description,
                })
                .await?;
                Ok(())
            }
            KeyCmd::Enable { key } => {
                kms.enable_key(pb::EnableKeyRequest { key_id: key }).await?;
                Ok(())
            }
            KeyCmd::Disable { key } => {
                kms.disable_key(pb::DisableKeyRequest { key_id: key })
                    .await?;
                Ok(())
            }
            KeyCmd::ScheduleDeletion { key, days, yes } => {
                if !yes {
                    confirm_deletion(&mut kms, &key, days).await?;
                }
                let r = kms
                    .schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
                        key_id: key,
                        pending_window_in_days: Some(days),
                    })
                    .await?
                    .into_inner();
                print(
                    &json!({"KeyId": r.key_id, "DeletionDate": ts(r.deletion_date.as_ref()), "PendingWindowInDays": r.pending_window_in_days}),
                )
            }
            KeyCmd::CancelDeletion { key } => {
                let r = kms
                    .cancel_key_deletion(pb::CancelKeyDeletionRequest { key_id: key })
                    .await?
                    .into_inner();
                print(&json!({"KeyId": r.key_id}))
            }
            KeyCmd::Rotate { key } => {
                let r = kms
                    .rotate_key_on_demand(pb::RotateKeyOnDemandRequest { key_id: key })
                    .await?
                    .into_inner();
                print(&json!({"KeyId": r.key_id}))
            }
            KeyCmd::EnableRotation { key, period_days } => {
                kms.enable_key_rotation(pb::EnableKeyRotationRequest {
                    key_id: key,
                    rotation_period_in_days: period_days,
                })
                .await?;
                Ok(())
            }
            KeyCmd::DisableRotation { key } => {
                kms.disable_key_rotation(pb::DisableKeyRotationRequest { key_id: key })
                    .await?;
                Ok(())
            }
            KeyCmd::RotationStatus { key } => {
                let r = kms
                    .get_key_rotation_status(pb::GetKeyRotationStatusRequest { key_id: key })
                    .await?
                    .into_inner();
                print(&json!({
                    "KeyId": r.key_id,
                    "KeyRotationEnabled": r.key_rotation_enabled,
                    "RotationPeriodInDays": r.rotation_period_in_days,
                    "NextRotationDate": ts(r.next_rotation_date.as_ref()),
                    "OnDemandRotationStartDate": ts(r.on_demand_rotation_start_date.as_ref()),
                }))
            }
            KeyCmd::ListRotations { key } => {
                let rotations = all_pages(|marker| {
                    let (mut kms, key_id) = (kms.clone(), key.clone());
                    async move {
                        let r = kms
                            .list_key_rotations(pb::ListKeyRotationsRequest {
                                key_id,
                                limit: Some(1000),
                                marker,
                            })
                            .await?
                            .into_inner();
                        Ok((r.rotations, r.next_marker, r.truncated))
                    }
                })
                .await?;
                let rotations: Vec<Value> = rotations
                    .iter()
                    .map(|r| {
                        let kind = match pb::RotationType::try_from(r.rotation_type) {
                            Ok(pb::RotationType::Automatic) => "AUTOMATIC",
                            Ok(pb::RotationType::OnDemand) => "ON_DEMAND",
                            _ => "UNKNOWN",
                        };
                        json!({
                            "KeyId": r.key_id,
                            "RotationDate": ts(r.rotation_date.as_ref()),
                            "RotationType": kind,
                            "KeyMaterialVersion": r.key_material_version,
                        })
                    })
                    .collect();
                print(&json!({"Rotations": rotations}))
            }
            KeyCmd::Tag { key, tags } => {
                let tags = tags
                    .into_iter()
                    .map(|(tag_key, tag_value)| pb::Tag { tag_key, tag_value })
                    .collect();
                kms.tag_resource(pb::TagResourceRequest { key_id: key, tags })
                    .await?;
                Ok(())
            }
            KeyCmd::Untag { key, tag_keys } => {
                kms.untag_resource(pb::UntagResourceRequest {
                    key_id: key,
                    tag_keys,
                })
                .await?;
                Ok(())
            }
            KeyCmd::ListTags { key } => {
                let tags = all_pages(|marker| {
                    let (mut kms, key_id) = (kms.clone(), key.clone());
                    async move {
                        let r = kms
                            .list_resource_tags(pb::ListResourceTagsRequest {
                                key_id,
                                limit: Some(50),
                                marker,
                            })
                            .await?
                            .into_inner();
                        Ok((r.tags, r.next_marker, r.truncated))
                    }
                })
                .await?;
                let tags: Vec<Value> = tags
                    .iter()
                    .map(|t| json!({"TagKey": t.tag_key, "TagValue": t.tag_value}))
                    .collect();
                print(&json!({"Tags": tags}))
            }
        },
        Command::Alias(cmd) => match cmd {
            AliasCmd::Create { name, key } => {
                kms.create_alias(pb::CreateAliasRequest {
                    alias_name: name,
                    target_key_id: key,
                })
                .await?;
                Ok(())
            }
            AliasCmd::Update { name, key } => {
                kms.update_alias(pb::UpdateAliasRequest {
                    alias_name: name,
                    target_key_id: key,
                })
                .await?;
                Ok(())
            }
            AliasCmd::List { key } => {
                let aliases = all_pages(|marker| {
                    let (mut kms, key_id) = (kms.clone(), key.clone());
                    async move {
                        let r = kms
                            .list_aliases(pb::ListAliasesRequest {
                                key_id,
                                limit: Some(100),
                                marker,
                            })
                            .await?
                            .into_inner();
                        Ok((r.aliases, r.next_marker, r.truncated))
                    }
                })
                .await?;
                let aliases: Vec<Value> = aliases
                    .iter()
                    .map(|a| {
                        json!({
                            "AliasName": a.alias_name,
                            "AliasArn": a.alias_arn,
                            "TargetKeyId": a.target_key_id,
                            "CreationDate": ts(a.creation_date.as_ref()),
                            "LastUpdatedDate": ts(a.last_updated_date.as_ref()),
                        })
                    })
                    .collect();
                print(&json!({"Aliases": aliases}))
            }
            AliasCmd::Delete { name } => {
                kms.delete_alias(pb::DeleteAliasRequest { alias_name: name })
                    .await?;
                Ok(())
            }
        },
        Command::Policy(cmd) => match cmd {
            PolicyCmd::Get { key } => {
                let r = kms
                    .get_key_policy(pb::GetKeyPolicyRequest {
                        key_id: key,
                        policy_name: None,
                    })
                    .await?
                    .into_inner();
                let doc: Value = serde_json::from_str(&r.policy)?;
                print(&doc)
            }
            PolicyCmd::List { key } => {
                let names = all_pages(|marker| {
                    let (mut kms, key_id) = (kms.clone(), key.clone());
                    async move {
                        let r = kms
                            .list_key_policies(pb::ListKeyPoliciesRequest {
                                key_id,
                                limit: Some(1000),
                                marker,
                            })
                            .await?
                            .into_inner();
                        Ok((r.policy_names, r.next_marker, r.truncated))
                    }
                })
                .await?;
                print(&json!({"PolicyNames": names}))
            }
            PolicyCmd::Put {
                key,
                file,
                bypass_policy_lockout_safety_check,
            } => {
                kms.put_key_policy(pb::PutKeyPolicyRequest {
                    key_id: key,
                    policy_name: None,
                    policy: read_text(&file)?,
                    bypass_policy_lockout_safety_check,
                })
                .await?;
                Ok(())
            }
        },
        Command::Iam(cmd) => {
            run_iam(
                cmd,
                &mut iam,
                &cli.conn,
                endpoint,
                target.ca_file.as_deref(),
            )
            .await
        }
        Command::Grant(cmd) => run_grant(cmd, &mut kms).await,
        Command::Audit(cmd) => run_audit(cmd, audit).await,
        Command::Bench(args) => run_bench(args, &target, &mut kms).await,
        Command::Encrypt {
            key,
            context: ctx,
            segment_size,
            no_progress,
            input,
            out,
        } => {
            let bar = progress::for_input(&input, !no_progress);
            let mut reader = bar.wrap_async_read(open_input(&input).await?);
            let ctx = context(ctx)?;
            if out.as_os_str() == "-" {
                let mut out = tokio::io::stdout();
                client::encrypt_stream(&mut kms, &key, ctx, &mut reader, &mut out, segment_size)
                    .await?;
                return Ok(());
            }
            let (tmp, mut file) = temp_output(&out).await?;
            let r =
                client::encrypt_stream(&mut kms, &key, ctx, &mut reader, &mut file, segment_size)
                    .await;
            bar.finish_and_clear();
            finish_output(tmp, &out, file, r).await?;
            Ok(())
        }
        Command::Decrypt {
            context: ctx,
            no_progress,
            input,
            out,
        } => {
            let bar = progress::for_input(&input, !no_progress);
            let mut reader = bar.wrap_async_read(open_input(&input).await?);
            let expected = context(ctx)?;
            if out.as_os_str() == "-" {
                // Only authenticated segments are written, but a stream
                // truncated later fails after earlier segments went out:
                // decrypt to a file for all or nothing.
                let mut out = tokio::io::stdout();
                client::decrypt_stream(&mut kms, &expected, &mut reader, &mut out).await?;
                return Ok(());
            }
            let (tmp, mut file) = temp_output(&out).await?;
            let r = client::decrypt_stream(&mut kms, &expected, &mut reader, &mut file).await;
            bar.finish_and_clear();
            finish_output(tmp, &out, file, r).await?;
            Ok(())
        }
        Command::EncryptBlob {
            key,
            context: ctx,
            grant_tokens,
            input,
            out,
        } => {
            let plaintext = read_input(&input)?;
            let r = kms
                .encrypt(pb::EncryptRequest {
                    key_id: key,
                    plaintext: plaintext.to_vec(),
                    encryption_context: context(ctx)?,
                    grant_tokens,
                    ..Default::default()
                })
                .await?
                .into_inner();
            write_output(&out, &r.ciphertext_blob)
        }
        Command::DecryptBlob {
            context: ctx,
            grant_tokens,
            input,
            out,
        } => {
            let blob = read_input(&input)?;
            let r = kms
                .decrypt(pb::DecryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    encryption_context: context(ctx)?,
                    grant_tokens,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let plaintext = zeroize::Zeroizing::new(r.plaintext);
            write_output(&out, &plaintext)
        }
        Command::ReEncryptBlob {
            key,
            source_key,
            source_context,
            context: ctx,
            grant_tokens,
            input,
            out,
        } => {
            let blob = read_input(&input)?;
            let r = kms
                .re_encrypt(pb::ReEncryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    source_encryption_context: context(source_context)?,
                    source_key_id: source_key,
                    destination_key_id: key,
                    destination_encryption_context: context(ctx)?,
                    grant_tokens,
                })
                .await?
                .into_inner();
            write_output(&out, &r.ciphertext_blob)
        }
        Command::Random { bytes, out } => {
            let r = kms
                .generate_random(pb::GenerateRandomRequest {
                    number_of_bytes: bytes,
                })
                .await?
                .into_inner();
            let random = zeroize::Zeroizing::new(r.plaintext);
            match out {
                Some(p) => write_output(&p, &random),
                None => {
                    let text = zeroize::Zeroizing::new(b64.encode(&*random));
                    print(&json!({"Plaintext": text.as_str()}))
                }
            }
        }
        Command::DataKey {
            key,
            context: ctx,
            without_plaintext,
        } => {
            if without_plaintext {
                let r = kms
                    .generate_data_key_without_plaintext(
                        pb::GenerateDataKeyWithoutPlaintextRequest {
                            key_id: key,
                            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
                            encryption_context: context(ctx)?,
                            ..Default::default()
                        },
                    )
                    .await?
                    .into_inner();
                print(&json!({"KeyId": r.key_id, "CiphertextBlob": b64.encode(&r.ciphertext_blob)}))
            } else {
                let r = kms
                    .generate_data_key(pb::GenerateDataKeyRequest {
                        key_id: key,
                        key_spec: Some(pb::DataKeySpec::Aes256 as i32),
                        encryption_context: context(ctx)?,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let plaintext = zeroize::Zeroizing::new(b64.encode(&r.plaintext));
                print(
                    &json!({"KeyId": r.key_id, "Plaintext": plaintext.as_str(), "CiphertextBlob": b64.encode(&r.ciphertext_blob)}),
                )
            }
        }
    }
}

/// The operations a grant can allow, spelled as AWS spells them.
const GRANT_OPERATIONS: [(&str, pb::GrantOperation); 9] = [
    ("Decrypt", pb::GrantOperation::Decrypt),
    ("Encrypt", pb::GrantOperation::Encrypt),
    ("GenerateDataKey", pb::GrantOperation::GenerateDataKey),
    (
        "GenerateDataKeyWithoutPlaintext",
        pb::GrantOperation::GenerateDataKeyWithoutPlaintext,
    ),
    ("ReEncryptFrom", pb::GrantOperation::ReEncryptFrom),
    ("ReEncryptTo", pb::GrantOperation::ReEncryptTo),
    ("CreateGrant", pb::GrantOperation::CreateGrant),
    ("RetireGrant", pb::GrantOperation::RetireGrant),
    ("DescribeKey", pb::GrantOperation::DescribeKey),
];

fn grant_operation(name: &str) -> anyhow::Result<i32> {
    GRANT_OPERATIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, op)| *op as i32)
        .ok_or_else(|| UsageError(format!("'{name}' is not an operation a grant can allow")).into())
}

fn grant_json(g: &pb::GrantListEntry) -> Value {
    let ops: Vec<String> = g
        .operations
        .iter()
        .filter_map(|o| {
            GRANT_OPERATIONS
                .iter()
                .find(|(_, op)| *op as i32 == *o)
                .map(|(name, _)| (*name).to_owned())
        })
        .collect();
    let optional = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    json!({
        "KeyId": g.key_id,
        "GrantId": g.grant_id,
        "Name": optional(&g.name),
        "CreationDate": ts(g.creation_date.as_ref()),
        "GranteePrincipal": g.grantee_principal,
        "RetiringPrincipal": optional(&g.retiring_principal),
        "IssuingAccount": g.issuing_account,
        "Operations": ops,
        "Constraints": g.constraints.as_ref().map(|c| if c.encryption_context_equals.is_empty() {
            json!({"EncryptionContextSubset": c.encryption_context_subset})
        } else {
            json!({"EncryptionContextEquals": c.encryption_context_equals})
        }),
    })
}

async fn run_grant(cmd: GrantCmd, kms: &mut KmsClient) -> anyhow::Result<()> {
    match cmd {
        GrantCmd::Create {
            key,
            grantee,
            operations,
            retiring_principal,
            subset,
            equals,
            name,
        } => {
            let operations = operations
                .iter()
                .map(|o| grant_operation(o))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let constraints = if subset.is_empty() && equals.is_empty() {
                None
            } else {
                Some(pb::GrantConstraints {
                    encryption_context_subset: context(subset)?,
                    encryption_context_equals: context(equals)?,
                })
            };
            let r = kms
                .create_grant(pb::CreateGrantRequest {
                    key_id: key,
                    grantee_principal: grantee,
                    retiring_principal,
                    operations,
                    constraints,
                    grant_tokens: vec![],
                    name,
                })
                .await?
                .into_inner();
            print(&json!({"GrantId": r.grant_id, "GrantToken": r.grant_token}))
        }
        GrantCmd::List { key } => {
            let grants = all_pages(|marker| {
                let (mut kms, key_id) = (kms.clone(), key.clone());
                async move {
                    let r = kms
                        .list_grants(pb::ListGrantsRequest {
                            key_id,
                            limit: Some(100),
                            marker,
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    Ok((r.grants, r.next_marker, r.truncated))
                }
            })
            .await?;
            print(&json!({"Grants": grants.iter().map(grant_json).collect::<Vec<_>>()}))
        }
        GrantCmd::ListRetirable { retiring_principal } => {
            // Every page: a principal may retire grants on many keys.
            let grants = all_pages(|marker| {
                let (mut kms, retiring_principal) = (kms.clone(), retiring_principal.clone());
                async move {
                    let r = kms
                        .list_retirable_grants(pb::ListRetirableGrantsRequest {
                            retiring_principal,
                            limit: Some(100),
                            marker,
                        })
                        .await?
                        .into_inner();
                    Ok((r.grants, r.next_marker, r.truncated))
                }
            })
            .await?;
            print(&json!({"Grants": grants.iter().map(grant_json).collect::<Vec<_>>()}))
        }
        GrantCmd::Retire {
            token,
            key,
            grant_id,
        } => {
            kms.retire_grant(pb::RetireGrantRequest {
                grant_token: token,
                key_id: key,
                grant_id,
            })
            .await?;
            Ok(())
        }
        GrantCmd::Revoke { key, grant_id } => {
            kms.revoke_grant(pb::RevokeGrantRequest {
                key_id: key,
                grant_id,
            })
            .await?;
            Ok(())
        }
    }
}

fn parse_time(s: &str) -> anyhow::Result<prost_types::Timestamp> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            UsageError(format!(
                "'{s}' is not an RFC 3339 time (e.g. 2026-11-29T10:00:00Z)"
            ))
        })?;
    Ok(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    })
}

fn outcome(s: &str) -> anyhow::Result<i32> {
    Ok(match s {
        "allowed" => pb::Outcome::Allowed,
        "denied" => pb::Outcome::Denied,
        "failed" => pb::Outcome::Failed,
        other => {
            return Err(UsageError(format!(
                "outcome '{other}' is not allowed, denied or failed"
            ))
            .into());
        }
    } as i32)
}

async fn run_audit(cmd: AuditCmd, mut audit: AuditClient) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Lookup {
            key,
            principal,
            operation,
            outcome: o,
            start,
            end,
            limit,
            marker,
        } => {
            let r = audit
                .lookup_events(pb::LookupEventsRequest {
                    start_time: start.as_deref().map(parse_time).transpose()?,
                    end_time: end.as_deref().map(parse_time).transpose()?,
                    key_id: key,
                    principal_arn: principal,
                    operation,
                    outcome: o.as_deref().map(outcome).transpose()?,
                    limit: Some(limit),
                    marker,
                })
                .await?
                .into_inner();
            let events: Vec<Value> = r
                .events
                .iter()
                .map(|e| serde_json::from_str::<Value>(&e.canonical_json).unwrap_or(Value::Null))
                .collect();
            print(&json!({"Events": events, "NextMarker": r.next_marker, "Truncated": r.truncated}))
        }
        AuditCmd::Verify => {
            let r = audit
                .verify_trail(pb::VerifyTrailRequest {})
                .await?
                .into_inner();
            print(&json!({
                "Valid": r.valid,
                "EventsChecked": r.events_checked,
                "FirstBrokenSequence": r.first_broken_sequence,
                "Problem": r.problem,
                "HeadSequence": r.head_sequence,
                "HeadHash": r.head_hash,
                "PrunedBefore": r.pruned_before,
            }))?;
            if r.valid {
                Ok(())
            } else {
                anyhow::bail!(
                    "the audit trail is broken at event {:?}",
                    r.first_broken_sequence
                )
            }
        }
        AuditCmd::History { key, as_of } => {
            let as_of = as_of.as_deref().map(parse_time).transpose()?;
            // Every page; the ARN is the same on each.
            let all = all_pages(|marker| {
                let (mut audit, key_id) = (audit.clone(), key.clone());
                async move {
                    let r = audit
                        .get_key_configuration_history(pb::GetKeyConfigurationHistoryRequest {
                            key_id,
                            as_of,
                            limit: None,
                            marker,
                        })
                        .await?
                        .into_inner();
                    let (next, truncated) = (r.next_marker.clone(), r.truncated);
                    Ok((vec![r], next, truncated))
                }
            })
            .await?;
            let key_arn = all.first().map(|r| r.key_arn.clone()).unwrap_or_default();
            let versions: Vec<Value> = all
                .iter()
                .flat_map(|r| r.versions.iter())
                .map(|v| {
                    json!({
                        "Version": v.version,
                        "ChangedAt": ts(v.changed_at.as_ref()),
                        "Configuration": serde_json::from_str::<Value>(&v.configuration).unwrap_or(Value::Null),
                    })
                })
                .collect();
            print(&json!({"KeyArn": key_arn, "Versions": versions}))
        }
        AuditCmd::Export => {
            let mut pages = Vec::new();
            let mut marker = None;
            loop {
                let r = audit
                    .lookup_events(pb::LookupEventsRequest {
                        limit: Some(1000),
                        marker,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                pages.push(r.events);
                match r.next_marker {
                    Some(m) if r.truncated => marker = Some(m),
                    _ => break,
                }
            }
            let mut out = std::io::stdout().lock();
            for e in pages.iter().flatten().rev() {
                match writeln!(out, "{}", e.canonical_json) {
                    Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other?,
                }
            }
            Ok(())
        }
    }
}

fn parse_mix(s: &str) -> anyhow::Result<Vec<(kmsd::bench::BenchOp, u32)>> {
    s.split(',')
        .map(|part| {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let usage = |m: String| anyhow::Error::from(UsageError(m));
            let op = kmsd::bench::BenchOp::parse(name.trim())
                .ok_or_else(|| usage(format!("'{name}' is not a bench operation")))?;
            let w: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w > 0)
                .ok_or_else(|| usage(format!("'{weight}' is not a positive weight")))?;
            Ok((op, w))
        })
        .collect()
}

fn report_json(r: &kmsd::bench::Report) -> Value {
    json!({
        "target": r.target,
        "requests": r.requests,
        "requests_per_second": (r.rps * 10.0).round() / 10.0,
        "successes_per_second": (r.ok_rps() * 10.0).round() / 10.0,
        "latency_us": {"p50": r.p50_us, "p90": r.p90_us, "p99": r.p99_us, "p99_9": r.p999_us, "max": r.max_us},
        "errors": r.errors,
        "elapsed_seconds": r.elapsed.as_secs_f64(),
    })
}

async fn run_bench(a: BenchArgs, target: &Target, kms: &mut KmsClient) -> anyhow::Result<()> {
    use kmsd::bench::{LoadShape, run_baseline, run_kms, start_baseline};
    let endpoint = target.endpoint.as_str();
    // The other counts are range-checked by clap.
    if !(a.duration.is_finite() && a.duration > 0.0) {
        return Err(UsageError("--duration must be positive".into()).into());
    }
    let mix = parse_mix(&a.op)?;
    let shape = LoadShape {
        concurrency: a.concurrency,
        connections: a.connections,
        duration: a
            .requests
            .is_none()
            .then(|| std::time::Duration::from_secs_f64(a.duration.max(0.1))),
        requests: a.requests,
        payload_size: a.payload_size,
        ca_pem: target.ca_pem.clone(),
    };
    // The baseline speaks TLS when kmsd does, with a certificate made for
    // the run, so that the two figures cost the same handshakes and record
    // encryption. One server serves every round.
    let kmsd_tls = kmsd::client::is_https(endpoint);
    if a.tls && !kmsd_tls && !a.baseline {
        return Err(UsageError(format!(
            "--tls serves the baseline over TLS, but {endpoint} is plaintext: the ratio would \
             compare TLS with plaintext; use an https:// endpoint, or --baseline alone"
        ))
        .into());
    }
    let tls = (a.tls || kmsd_tls)
        .then(|| kmsd::tls::ServerTls::self_signed(&["localhost", "127.0.0.1"]))
        .transpose()?;
    let baseline = if a.no_baseline {
        None
    } else {
        let (server, stop) = start_baseline(tls.as_ref()).await?;
        let shape = LoadShape {
            ca_pem: tls.as_ref().map(|t| t.cert_pem().to_vec()),
            ..shape.clone()
        };
        Some((server, stop, shape))
    };
    let auth = target.auth.clone();
    let (key, created) = match (&a.key, a.baseline) {
        (_, true) => (None, false),
        (Some(k), false) => (Some(k.clone()), false),
        (None, false) => {
            let r = kms
                .create_key(pb::CreateKeyRequest {
                    description: Some("kmsctl bench".into()),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let id = r
                .key_metadata
                .map(|m| m.key_id)
                .ok_or_else(|| anyhow!("CreateKey returned no key metadata"))?;
            (Some(id), true)
        }
    };
    let mut reports = Vec::new();
    let mut ratios = Vec::new();
    // Any failure ends the rounds, but the run's key is still scheduled for
    // deletion below.
    let mut failure: Option<anyhow::Error> = None;
    for _ in 0..a.rounds {
        // This round's baseline report, by its index in `reports`.
        let mut base = None;
        if let Some((server, _, shape)) = &baseline {
            let mut report = match run_baseline(server, shape).await {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            };
            if tls.is_some() {
                report.target.push_str(" (TLS)");
            }
            base = Some(reports.len());
            reports.push(report);
        }
        if let Some(key) = &key {
            match run_kms(
                endpoint,
                auth.clone(),
                key,
                context(a.context.clone())?,
                &mix,
                &shape,
            )
            .await
            {
                Ok(mut r) => {
                    if kmsd_tls {
                        r.target.push_str(" (TLS)");
                    }
                    if let Some(ratio) = base
                        .and_then(|i| reports.get(i))
                        .and_then(|b| r.ratio_to(b))
                    {
                        ratios.push(ratio);
                    }
                    reports.push(r);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    if let Some((_, stop, _)) = baseline {
        let _ = stop.send(());
    }
    if created && let Some(key) = &key {
        kms.schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
            key_id: key.clone(),
            pending_window_in_days: Some(7),
        })
        .await?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let ratio = median(&mut ratios.clone());
    if output::format() == Output::Json {
        return print(&json!({
            "concurrency": a.concurrency,
            "connections": a.connections,
            "payload_size": a.payload_size,
            "rounds": a.rounds,
            "reports": reports.iter().map(report_json).collect::<Vec<_>>(),
            "ratios": ratios.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            "ratio_to_baseline": ratio.map(|r| (r * 1000.0).round() / 1000.0),
        }));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{} in flight over {} connections, {} B payload\n",
        a.concurrency, a.connections, a.payload_size
    ));
    out.push_str(&format!(
        "{:<36} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}  errors\n",
        "target", "requests", "req/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us"
    ));
    for r in &reports {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "{:<36} {:>9} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n",
            r.target,
            r.requests,
            r.rps,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            if errors.is_empty() {
                "0".to_owned()
            } else {
                errors.join(" ")
            }
        ));
    }
    match (ratio, ratios.len()) {
        (Some(r), 1) => out.push_str(&format!("kmsd / baseline: {:.1}%\n", r * 100.0)),
        (Some(r), n) => {
            let each: Vec<String> = ratios
                .iter()
                .map(|x| format!("{:.1}%", x * 100.0))
                .collect();
            out.push_str(&format!(
                "kmsd / baseline: {:.1}% (median of {n} rounds: {})\n",
                r * 100.0,
                each.join(" ")
            ));
        }
        (None, _) => {}
    }
    output::write_stdout(out.as_bytes())
}

/// The median of `xs` (the mean of the middle two for an even count).
fn median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => xs.get(n / 2).copied(),
        _ => Some((xs.get(n / 2 - 1)? + xs.get(n / 2)?) / 2.0),
    }
}

async fn open_input(p: &PathBuf) -> anyhow::Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
    if p.as_os_str() == "-" {
        Ok(Box::new(tokio::io::stdin()))
    } else {
        let f = tokio::fs::File::open(p)
            .await
            .with_context(|| format!("opening {}", p.display()))?;
        Ok(Box::new(tokio::io::BufReader::with_capacity(256 * 1024, f)))
    }
}

/// A temporary file beside `p` (mode 0600), to be renamed over `p` only
/// when everything written to it is good.
async fn temp_output(p: &Path) -> anyhow::Result<(PathBuf, tokio::io::BufWriter<tokio::fs::File>)> {
    let tmp = kmsd::private_file::temp_path(p);
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .await
        .with_context(|| format!("creating {}", tmp.display()))?;
    Ok((tmp, tokio::io::BufWriter::with_capacity(256 * 1024, file)))
}

/// Renames the temporary file over `p` if `result` is good; removes it
/// otherwise, so a failed decryption never leaves partial plaintext.
async fn finish_output<T, E: Into<anyhow::Error>>(
    tmp: PathBuf,
    p: &Path,
    mut writer: tokio::io::BufWriter<tokio::fs::File>,
    result: Result<T, E>,
) -> anyhow::Result<T> {
    use tokio::io::AsyncWriteExt;
    let synced = match &result {
        Ok(_) => {
            let flushed = writer.flush().await;
            match flushed {
                Ok(()) => writer.get_ref().sync_all().await,
                Err(e) => Err(e),
            }
        }
        Err(_) => Ok(()),
    };
    drop(writer);
    match (result, synced) {
        (Ok(v), Ok(())) => {
            tokio::fs::rename(&tmp, p)
                .await
                .with_context(|| format!("writing {}", p.display()))?;
            kmsd::private_file::sync_parent(p)
                .with_context(|| format!("syncing the directory of {}", p.display()))?;
            Ok(v)
        }
        (Ok(_), Err(e)) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(anyhow::Error::from(e).context(format!("writing {}", p.display())))
        }
        (Err(e), _) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [0.4]), Some(0.4));
        assert_eq!(median(&mut [0.9, 0.1, 0.5]), Some(0.5));
        assert_eq!(median(&mut [0.8, 0.2, 0.4, 0.6]), Some(0.5));
    }

    #[test]
    fn subcommand_arguments_do_not_feed_the_global_credentials() {
        let cli =
            Cli::try_parse_from(["kmsctl", "iam", "delete-access-key", "AKIAEXAMPLE"]).unwrap();
        assert_eq!(cli.conn.access_key_id, None);
        assert!(matches!(
            cli.command,
            Command::Iam(IamCmd::DeleteAccessKey { ref key_id, .. }) if key_id == "AKIAEXAMPLE"
        ));
        let cli = Cli::try_parse_from(["kmsctl", "random", "--out", "f"]).unwrap();
        assert_eq!(cli.conn.output, None);
    }

    /// Walks `pages` (items, next marker, truncated) as a daemon would
    /// answer them, recording the marker each call was given.
    fn walk(
        pages: Vec<(Vec<u32>, Option<&'static str>, bool)>,
    ) -> (anyhow::Result<Vec<u32>>, Vec<Option<String>>) {
        let asked = std::cell::RefCell::new(Vec::new());
        let mut pages = pages.into_iter();
        let result = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(all_pages(|marker| {
                asked.borrow_mut().push(marker);
                let page = pages.next().expect("asked for a page past the last");
                async move { Ok((page.0, page.1.map(String::from), page.2)) }
            }));
        (result, asked.into_inner())
    }

    #[test]
    fn all_pages_follows_markers_until_not_truncated() {
        let (all, asked) = walk(vec![
            (vec![1, 2], Some("a"), true),
            (vec![3], Some("b"), true),
            // A marker without `truncated` ends the walk.
            (vec![4], Some("c"), false),
        ]);
        assert_eq!(all.unwrap(), [1, 2, 3, 4]);
        assert_eq!(asked, [None, Some("a".into()), Some("b".into())]);
    }

    #[test]
    fn all_pages_stops_on_a_marker_given_before() {
        for pages in [
            vec![(vec![1], Some("a"), true), (vec![2], Some("a"), true)],
            vec![
                (vec![1], Some("a"), true),
                (vec![2], Some("b"), true),
                (vec![3], Some("a"), true),
            ],
        ] {
            let n = pages.len();
            let (all, asked) = walk(pages);
            let e = all.unwrap_err().to_string();
            assert!(e.contains("page marker it had given before"), "{e}");
            assert_eq!(asked.len(), n, "no page asked for after the repeat");
        }
    }

    #[test]
    fn a_context_key_given_twice_is_a_usage_error() {
        let kv = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let map = context(kv(&[("a", "1"), ("b", "2")])).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["a"], "1");
        let e = context(kv(&[("a", "1"), ("b", "2"), ("a", "3")])).unwrap_err();
        assert!(e.downcast_ref::<UsageError>().is_some(), "{e}");
        assert!(e.to_string().contains("'a'"), "{e}");
    }

    #[test]
    fn parsed_arguments_never_print_the_secret() {
        let cli = Cli::try_parse_from([
            "kmsctl",
            "--secret-access-key",
            "canary-secret",
            "--session-token",
            "canary-token",
            "whoami",
        ])
        .unwrap();
        let printed = format!("{cli:?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
