//! Putting the daemon together: the data directory, root key, store and
//! domain service; the `kmsd dev` bootstrap and its credentials file; and
//! serving gRPC with the maintenance task until shutdown.
//!
//! Data directory layout:
//! - `root.key`: the 32-byte root key, mode 0600.
//! - `kmsd.db` (+ `-wal`, `-shm`): the SQLite database.
//! - `credentials`: INI profiles written by `kmsd dev`, mode 0600.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::crypto::secret::SecretBytes;
use crate::crypto::{RootKey, wrap};
use crate::error::KmsError;
use crate::identity::{Caller, Principal, root_arn};
use crate::kms::{Kms, KmsSettings, run_maintenance};
use crate::model::{OPERATOR_ACCOUNT, PrincipalType};
use crate::server::grpc::{self, Handler};
use crate::store::Store;
use crate::store::sqlite::{DatabaseLock, SqliteStore};

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory or a file in it.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The root key.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::Error),
    /// The database (the source says what failed).
    #[error("database")]
    Store(#[from] crate::store::Error),
    /// A domain operation during bootstrap.
    #[error("bootstrap: {0}")]
    Kms(#[from] KmsError),
    /// The gRPC server.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The data directory is in a state we do not understand.
    #[error("{0}")]
    Inconsistent(String),
    /// The credentials file could not be written.
    #[error(transparent)]
    Credentials(#[from] crate::profile::ProfileError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Options of a daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the root key, database and credentials live.
    pub data_dir: PathBuf,
    /// Domain settings.
    pub settings: KmsSettings,
    /// How often the maintenance task sweeps.
    pub sweep_interval: Duration,
    /// Read connections to the database.
    pub readers: usize,
    /// WAL pages past which the log is started over (see
    /// [`crate::store::sqlite::WAL_RESTART_PAGES`]); tests lower it.
    pub wal_restart_pages: u32,
    /// How long shutdown waits for calls and connections to finish before
    /// closing what remains.
    pub shutdown_grace: Duration,
    /// Record an audit event per call. Always on in `kmsd`; off only in
    /// `benches/audit_cost.rs`, which measures what the trail costs.
    pub audit: bool,
    /// Serve TLS with this certificate and key (plaintext if `None`).
    pub tls: Option<crate::tls::ServerTls>,
    /// The CA certificate file clients should trust, written as `ca_file`
    /// into each profile of the dev credentials file.
    pub ca_file: Option<PathBuf>,
}

impl Options {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            settings: KmsSettings::default(),
            sweep_interval: Duration::from_secs(60),
            readers: 4,
            wal_restart_pages: crate::store::sqlite::WAL_RESTART_PAGES,
            shutdown_grace: Duration::from_secs(10),
            audit: true,
            tls: None,
            ca_file: None,
        }
    }
}

/// One profile of the credentials file.
pub struct Profile {
    /// The gRPC endpoint, e.g. `http://127.0.0.1:7878`.
    pub endpoint: String,
    /// The account.
    pub account_id: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretBytes,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("endpoint", &self.endpoint)
            .field("account_id", &self.account_id)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What the dev bootstrap produced.
#[derive(Debug)]
pub struct DevCredentials {
    /// Whether this run created them.
    pub first_run: bool,
    /// The first account's `admin` user (`[default]`); `None` if it has no
    /// access key left.
    pub admin: Option<Profile>,
    /// The first account's root (`[root]`), for managing its users until
    /// identity policies let the admin do it.
    pub root: Option<Profile>,
    /// The operator account's root (`[operator]`).
    pub operator: Option<Profile>,
    /// Where they were written.
    pub path: PathBuf,
}

/// An opened daemon: store, root key and domain service.
pub struct Daemon {
    kms: Arc<Kms>,
    root: Arc<RootKey>,
    store: Arc<SqliteStore>,
    options: Options,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

const META_ADMIN_ACCOUNT: &str = "dev.admin_account_id";
const ADMIN_USER: &str = "admin";
/// The inline policy the bootstrap gives `admin`: everything, as AWS's
/// AdministratorAccess managed policy does.
const ADMIN_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":"*","Resource":"*"}]}"#;

fn internal_root(account_id: &str) -> Caller {
    Caller {
        account_id: account_id.to_owned(),
        arn: root_arn(account_id),
        principal: Principal::Root,
        user_id: account_id.to_owned(),
        access_key_id: String::new(),
        source_ip: None,
        mfa_present: false,
        session_expiry: None,
    }
}

impl Daemon {
    /// Opens the data directory (creating it, mode 0700, and the root key,
    /// mode 0600, on first use) and the database, applying migrations.
    pub fn open(options: Options, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let dir = &options.data_dir;
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        let db = dir.join("kmsd.db");
        // First, so that a second kmsd on this directory stops before it has
        // read the root key or touched anything.
        let lock = DatabaseLock::acquire(&db)?;
        let (root, created) = RootKey::load_or_create(&dir.join("root.key"))?;
        if created && db.exists() {
            return Err(Error::Inconsistent(format!(
                "{} exists but its root key was missing; a new root key cannot read it",
                db.display()
            )));
        }
        if !db.exists() {
            // SQLite gives its WAL and shared-memory files the database's mode.
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&db)
                .map_err(io(&db))?;
        }
        // It holds wrapped key material, hashed session tokens and the
        // audit trail: a copy or a restore that left it (or its WAL) open
        // to group or others is narrowed back, as the TLS directory is.
        for name in ["kmsd.db", "kmsd.db-wal", "kmsd.db-shm"] {
            crate::private_file::tighten_and_warn(&dir.join(name), 0o600, "a database file");
        }
        let store = Arc::new(SqliteStore::open_locked(
            lock,
            options.readers,
            Arc::clone(&clock),
            options.wal_restart_pages,
        )?);
        let root = Arc::new(root);
        let kms = Arc::new(Kms::new(
            Arc::clone(&store) as Arc<dyn Store>,
            Arc::clone(&root),
            clock,
            options.settings.clone(),
        ));
        Ok(Self {
            kms,
            root,
            store,
            options,
        })
    }

    /// Serves TLS with `tls` (set after [`Self::open`], so that a daemon
    /// refused its data directory has made no certificate); `ca_file`, the
    /// certificate clients should trust, goes into the dev credentials.
    pub fn set_tls(&mut self, tls: crate::tls::ServerTls, ca_file: Option<PathBuf>) {
        self.options.tls = Some(tls);
        self.options.ca_file = ca_file;
    }

    /// The domain service.
    pub fn kms(&self) -> &Arc<Kms> {
        &self.kms
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    /// The gRPC handlers over this daemon.
    pub fn handler(&self) -> Handler {
        Handler::new(Arc::clone(&self.kms), Arc::clone(&self.root)).with_audit(self.options.audit)
    }

    /// On first run, creates the operator account and a first account with
    /// an `admin` user, each with an access key; on every run, (re)writes
    /// `credentials` in the data directory with `endpoint` and the newest
    /// access key of each (so a rotated key is followed, not lost).
    pub async fn bootstrap_dev(&self, endpoint: &str) -> Result<DevCredentials, Error> {
        let store = self.kms.store();
        let mut account_id = store.get_meta(META_ADMIN_ACCOUNT).await?;
        let first_run = account_id.is_none();
        if first_run {
            if store.get_account(OPERATOR_ACCOUNT).await?.is_some() {
                return Err(Error::Inconsistent(format!(
                    "{} holds an incomplete bootstrap (an earlier first run was interrupted); remove the data directory and start again",
                    self.data_dir().display()
                )));
            }
            self.kms
                .create_account_with_id(OPERATOR_ACCOUNT, "operator")
                .await?;
            let account = self
                .kms
                .create_account_with_id(&crate::identity::new_account_id()?, "default")
                .await?;
            let root = internal_root(&account.account.id);
            self.kms.create_user(&root, ADMIN_USER, None).await?;
            self.kms
                .put_identity_policy(
                    &root,
                    PrincipalType::User,
                    ADMIN_USER,
                    "AdministratorAccess",
                    ADMIN_POLICY,
                )
                .await?;
            self.kms.create_access_key(&root, Some(ADMIN_USER)).await?;
            // Written last: its presence means the bootstrap completed.
            store
                .set_meta(META_ADMIN_ACCOUNT, &account.account.id)
                .await?;
            account_id = Some(account.account.id);
        }
        let account_id = account_id.unwrap_or_default();
        let admin = self
            .profile(endpoint, &account_id, Some(ADMIN_USER))
            .await?;
        let root = self.profile(endpoint, &account_id, None).await?;
        let operator = self.profile(endpoint, OPERATOR_ACCOUNT, None).await?;
        let path = self.data_dir().join("credentials");
        let sections: Vec<(&str, &Profile)> = [
            ("default", &admin),
            ("root", &root),
            ("operator", &operator),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_ref().map(|p| (name, p)))
        .collect();
        write_credentials(&path, &sections, self.options.ca_file.as_deref())?;
        Ok(DevCredentials {
            first_run,
            admin,
            root,
            operator,
            path,
        })
    }

    /// The newest active access key of a user (or of the root, for `None`).
    async fn profile(
        &self,
        endpoint: &str,
        account_id: &str,
        user: Option<&str>,
    ) -> Result<Option<Profile>, Error> {
        let keys = self.kms.store().list_access_keys(account_id, user).await?;
        let Some(rec) = keys
            .into_iter()
            .rev()
            .find(|k| k.status == crate::model::AccessKeyStatus::Active)
        else {
            tracing::warn!(
                account_id,
                user,
                "no active access key; its profile is left out of the credentials file"
            );
            return Ok(None);
        };
        let secret = wrap::unwrap_credential(&self.root, &rec.access_key_id, &rec.wrapped_secret)?;
        Ok(Some(Profile {
            endpoint: endpoint.to_owned(),
            account_id: rec.account_id,
            access_key_id: rec.access_key_id,
            secret_access_key: secret,
        }))
    }

    /// Serves gRPC on `listener` and runs maintenance until `shutdown`
    /// resolves; then drains in-flight calls and closes the store, which
    /// commits every write already queued.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut maintenance_stop = stop_rx.clone();
        let maintenance = tokio::spawn(run_maintenance(
            Arc::clone(&self.kms),
            self.options.sweep_interval,
            async move {
                let _ = maintenance_stop.wait_for(|s| *s).await;
            },
        ));
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
        let tls = self.options.tls.as_ref().map(|t| t.server_config());
        let server = grpc::serve(listener, self.handler(), tls, async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            let _ = fired_tx.send(());
        });
        tokio::pin!(server);
        let grace = self.options.shutdown_grace;
        let result = tokio::select! {
            r = &mut server => r,
            () = async {
                if fired_rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                // A client that ignores GOAWAY must not hold the daemon up.
                tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; closing them");
                Ok(())
            }
        };
        drop(stop_rx);
        let _ = maintenance.await;
        let Self {
            kms, root, store, ..
        } = self;
        drop(kms);
        drop(root);
        // The last reference: dropping it joins the writer after its queue.
        drop(store);
        result.map_err(Error::from)
    }
}

/// Writes the dev profiles into the credentials file (atomically, mode
/// 0600), keeping any other profile the file holds.
fn write_credentials(
    path: &Path,
    profiles: &[(&str, &Profile)],
    ca_file: Option<&Path>,
) -> Result<(), Error> {
    let ca = ca_file.map(|p| p.display().to_string());
    let secrets: Vec<zeroize::Zeroizing<String>> = profiles
        .iter()
        .map(|(_, p)| {
            zeroize::Zeroizing::new(
                String::from_utf8_lossy(p.secret_access_key.expose_secret()).into_owned(),
            )
        })
        .collect();
    let fields: Vec<Vec<(&str, &str)>> = profiles
        .iter()
        .zip(&secrets)
        .map(|((_, p), secret)| {
            let mut f = vec![
                ("endpoint", p.endpoint.as_str()),
                ("account_id", p.account_id.as_str()),
                ("access_key_id", p.access_key_id.as_str()),
                ("secret_access_key", secret.as_str()),
            ];
            if let Some(ca) = &ca {
                f.push(("ca_file", ca.as_str()));
            }
            f
        })
        .collect();
    let sections: Vec<(&str, &[(&str, &str)])> = profiles
        .iter()
        .zip(&fields)
        .map(|((name, _), f)| (*name, f.as_slice()))
        .collect();
    Ok(crate::profile::save_sections(path, &sections)?)
}
