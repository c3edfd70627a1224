//! `kmsd`: the key-management daemon.

/// mimalloc instead of glibc's malloc: about 10 % less CPU per call
/// (BENCHMARKS.md). Secrets are zeroized before they are freed, whichever
/// allocator holds the memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kmsd::clock::SystemClock;
use kmsd::daemon::{Daemon, Options};
use kmsd::server::grpc::plaintext_allowed;
use kmsd::tls::ServerTls;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "kmsd",
    version,
    about = "A self-hosted key-management service in the mould of AWS KMS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a development daemon with no set-up: SQLite under a local data
    /// directory, root key and first admin created on first run, plaintext
    /// gRPC on loopback only (or TLS with --tls or --tls-cert/--tls-key).
    Dev {
        /// Where the root key, database and credentials live.
        #[arg(long, default_value = "kmsd-data")]
        data_dir: PathBuf,
        /// Address to listen on (a loopback address; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: SocketAddr,
        /// Region used in ARNs.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Seconds between sweeps that destroy due keys and rotate due keys.
        #[arg(long, default_value_t = 60)]
        sweep_interval_secs: u64,
        /// Prune audit events older than this many days (the chain stays
        /// verifiable); by default they are kept forever.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        audit_retention_days: Option<u32>,
        /// Most grants on one key.
        #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
        max_grants_per_key: u64,
        /// Serve TLS with a self-signed certificate for localhost, 127.0.0.1
        /// and ::1, made once in DATA_DIR/tls/ (clients trust its cert.pem;
        /// the credentials file's profiles name it as ca_file).
        #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
        tls: bool,
        /// Serve TLS with this certificate chain (PEM)...
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// ...and this private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmsd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev {
            data_dir,
            listen,
            region,
            sweep_interval_secs,
            audit_retention_days,
            max_grants_per_key,
            tls,
            tls_cert,
            tls_key,
        } => {
            let mut options = Options::new(&data_dir);
            // Your own pair is read first, so that a wrong path stops kmsd
            // before it creates anything.
            let own_tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => {
                    let pair = ServerTls::load(&cert, &key).with_context(|| {
                        format!(
                            "reading --tls-cert {} and --tls-key {}",
                            cert.display(),
                            key.display()
                        )
                    })?;
                    // Yours to manage (a group such as ssl-cert may need
                    // it), so not refused as the dev key is; but said.
                    if let Ok(Some(mode)) = kmsd::private_file::too_open(&key) {
                        tracing::warn!(
                            key = %key.display(),
                            "the TLS private key is mode {mode:o}: whoever can read it can pose as this kmsd"
                        );
                    }
                    Some(pair)
                }
                _ => None,
            };
            let options_tls = tls || own_tls.is_some();
            if !options_tls && !plaintext_allowed(&listen) {
                bail!(
                    "kmsd dev serves plaintext gRPC and so listens on loopback only; {listen} is not a loopback address (serve TLS to listen elsewhere)"
                );
            }
            options.settings.region = region;
            options.settings.audit_retention_days = audit_retention_days;
            options.settings.max_grants_per_key =
                usize::try_from(max_grants_per_key).unwrap_or(usize::MAX);
            options.sweep_interval = Duration::from_secs(sweep_interval_secs.max(1));
            let mut daemon = Daemon::open(options, Arc::new(SystemClock))
                .with_context(|| format!("opening data directory {}", data_dir.display()))?;
            if tls {
                // After the data directory is ours (a second kmsd on it
                // has stopped by now, before making a certificate).
                let dir = std::path::absolute(data_dir.join("tls"))?;
                let made = ServerTls::dev(&dir)
                    .with_context(|| format!("making a certificate in {}", dir.display()))?;
                daemon.set_tls(made, Some(dir.join("cert.pem")));
            } else if let Some(own) = own_tls {
                daemon.set_tls(own, None);
            }
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr()?;
            let scheme = if options_tls { "https" } else { "http" };
            // Clients cannot connect to (nor verify a certificate for) an
            // unspecified address such as 0.0.0.0: name loopback instead.
            let mut reachable = addr;
            if reachable.ip().is_unspecified() {
                reachable.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let endpoint = format!("{scheme}://{reachable}");
            let creds = daemon.bootstrap_dev(&endpoint).await?;
            match (&creds.admin, creds.first_run) {
                (Some(admin), true) => {
                    println!(
                        "kmsd dev: created {} with a new root key and database.",
                        data_dir.display()
                    );
                    println!();
                    println!(
                        "First account {} has an admin user. Its credentials, shown once here:",
                        admin.account_id
                    );
                    println!("  access key id:     {}", admin.access_key_id);
                    println!(
                        "  secret access key: {}",
                        String::from_utf8_lossy(admin.secret_access_key.expose_secret())
                    );
                    println!();
                }
                (Some(admin), false) => {
                    println!(
                        "kmsd dev: reusing {} (account {}).",
                        data_dir.display(),
                        admin.account_id
                    );
                }
                (None, _) => println!(
                    "kmsd dev: reusing {}; the admin user has no access key.",
                    data_dir.display()
                ),
            }
            println!(
                "Profiles [default] (admin), [root] and [operator] are in {} (mode 0600).",
                creds.path.display()
            );
            println!("endpoint: {endpoint}");
            println!("listening on {addr}");
            daemon.serve(listener, shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing calls in flight");
}
