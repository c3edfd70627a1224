//! What the benches share: a real kmsd, in this process, on a loopback port.

use std::sync::Arc;

use kmsd::client::BearerAuth;
use kmsd::clock::SystemClock;
use kmsd::daemon::{Daemon, Options};

/// A dev-bootstrapped daemon in a temporary data directory, serving until
/// [`InProcess::stop`].
pub struct InProcess {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The first account's admin.
    pub auth: BearerAuth,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), kmsd::daemon::Error>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts one; `configure` may change the options first.
    pub async fn start(configure: impl FnOnce(&mut Options)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut options = Options::new(dir.path().join("data"));
        configure(&mut options);
        let daemon = Daemon::open(options, Arc::new(SystemClock))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let creds = daemon.bootstrap_dev(&endpoint).await?;
        let admin = creds.admin.ok_or_else(|| anyhow::anyhow!("no admin"))?;
        let secret = String::from_utf8(admin.secret_access_key.expose_secret().to_vec())?;
        let auth = BearerAuth::new(&admin.access_key_id, &secret, None)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(daemon.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            endpoint,
            auth,
            stop,
            server,
            _dir: dir,
        })
    }

    /// Stops serving and waits for the daemon to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
