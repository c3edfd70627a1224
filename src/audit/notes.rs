//! Per-request notes: what the domain touched while serving one call (the
//! keys, the encryption context, the grant that allowed it, a key pending
//! deletion), gathered in a task-local so that the domain's signatures stay
//! free of transport and audit plumbing. Outside a [`scope`], noting does
//! nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;

use crate::crypto::EncryptionContext;

/// What one request touched.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    /// Key ARNs, in the order first touched.
    pub key_arns: Vec<String>,
    /// The encryption context of the call (ReEncrypt: the source's).
    pub encryption_context: BTreeMap<String, String>,
    /// ReEncrypt: the destination's encryption context.
    pub destination_context: Option<BTreeMap<String, String>>,
    /// The grant that allowed the call.
    pub grant_id: Option<String>,
    /// A key pending deletion the call tried to use.
    pub pending_deletion_key: Option<String>,
    /// What an IAM call acted on (`userName`, `roleArn`, ...), as
    /// CloudTrail's `requestParameters` name it. Never a secret.
    pub parameters: BTreeMap<String, String>,
    /// What an IAM call issued that later events name (the access key id
    /// of new credentials), as CloudTrail's `responseElements`. Never a
    /// secret or a session token.
    pub response: BTreeMap<String, String>,
}

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// Runs `f` collecting notes; returns its output and the notes.
pub async fn scope<F: Future>(f: F) -> (F::Output, Notes) {
    NOTES
        .scope(RefCell::new(Notes::default()), async move {
            let out = f.await;
            let notes = NOTES.with(|n| n.take());
            (out, notes)
        })
        .await
}

fn with(f: impl FnOnce(&mut Notes)) {
    let _ = NOTES.try_with(|n| f(&mut n.borrow_mut()));
}

/// The call touched this key.
pub fn key(arn: &str) {
    with(|n| {
        if !n.key_arns.iter().any(|a| a == arn) {
            n.key_arns.push(arn.to_owned());
        }
    });
}

/// The call's encryption context.
pub fn context(ctx: &EncryptionContext) {
    with(|n| {
        n.encryption_context
            .extend(ctx.entries().iter().map(|(k, v)| (k.clone(), v.clone())))
    });
}

/// ReEncrypt's destination encryption context.
pub fn destination_context(ctx: &EncryptionContext) {
    with(|n| n.destination_context = Some(ctx.entries().clone()));
}

/// A grant allowed the call.
pub fn grant(id: &str) {
    with(|n| n.grant_id = Some(id.to_owned()));
}

/// What the call acted on, e.g. `("userName", "alice")`; never a secret.
pub fn parameter(name: &str, value: &str) {
    with(|n| {
        n.parameters.insert(name.to_owned(), value.to_owned());
    });
}

/// What the call issued that later events name, e.g. the access key id of
/// new credentials; never a secret or a token.
pub fn response(name: &str, value: &str) {
    with(|n| {
        n.response.insert(name.to_owned(), value.to_owned());
    });
}

/// The call tried to use a key pending deletion.
pub fn pending_deletion_use(arn: &str) {
    with(|n| n.pending_deletion_key = Some(arn.to_owned()));
}
