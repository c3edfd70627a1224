//! Micro-benchmarks of the pieces of one KMS Encrypt/Decrypt call, each
//! measured alone and in-process (no gRPC, no authentication, no audit
//! write), so that the request-level figures in BENCHMARKS.md can be split
//! into their parts.
//!
//! ```sh
//! cargo bench --bench micro              # everything (about a minute)
//! cargo bench --bench micro -- policy/   # one group (Criterion filter)
//! ```
//!
//! What each benchmark measures:
//!
//! - `blob/seal/{64B,4KiB}`: `crypto::blob::seal`, the whole Encrypt
//!   cryptography: salt and nonce from the OS RNG, HKDF-SHA256 of the
//!   per-message key, AES-256-GCM over the plaintext with the header and a
//!   two-entry encryption context as AAD. Throughput is plaintext bytes.
//! - `blob/open/{64B,4KiB}`: `BlobHeader::parse` then `crypto::blob::open`,
//!   the whole Decrypt cryptography (HKDF, AES-256-GCM check and decrypt
//!   into zeroizing memory).
//! - `kdf/hkdf_sha256_message_key`: `crypto::blob::message_key`, the
//!   per-message key derivation alone (HKDF-SHA256: salt = the blob's
//!   32-byte salt, ikm = the key material, info = `labels::ENCRYPT_V1`,
//!   output into a zeroizing `Secret<32>`).
//! - `kdf/message_cipher`: `crypto::blob::message_cipher`, the above plus
//!   the AES-256 key schedule (`Aes256Gcm::new`).
//! - `kdf/rng_salt_and_nonce`: the one `crypto::rng::array` call (44 bytes
//!   from getrandom: salt and nonce) that `seal` makes per message.
//! - `wrap/unwrap_key_material`: `crypto::wrap::unwrap_key_material` with a
//!   `RootKey::from_bytes` root: HKDF of the wrapping key, AES-256-GCM open
//!   of 32 bytes, copy into a zeroizing `KeyMaterial`. kmsd now keeps
//!   unwrapped material for five minutes, so a key in use pays this once.
//! - `policy/evaluate_key_user_encrypt`: `Policy::evaluate` of a compiled
//!   three-statement key policy (account root enable, key administrators,
//!   key users with a `kms:EncryptionContext:` condition) for `kms:Encrypt`
//!   by the key user; every statement is tried. Parsing is outside the loop.
//! - `policy/parse_compile_key_policy`: `Policy::parse` of the same document
//!   (kmsd does this once per distinct document and caches the result).
//! - `policy/condition_context_build`: `kms::condition_context`, the
//!   request's condition keys (built only when a policy has a Condition, as
//!   this benchmark's key policy does).
//! - `grants/allowing_grant_of_callers`: `kms::allowing_grant` over the
//!   grants the store returns for a role session (operation and
//!   encryption-context constraints): the in-memory part of a grant check.
//! - `grants/store_grants_for_cached`: `Store::grants_for` on a real
//!   `SqliteStore` in a tempdir (key with 50 grants), for a role session
//!   (own ARN + role ARN), followed by the same match: exactly what
//!   `Kms::grant_allows` (pub(crate)) does per call. Served from the store's
//!   read cache, which is the steady state.
//! - `grants/store_grants_for_uncached`: the same with a new session name on
//!   every iteration, so the cache misses and two indexed SQLite queries run
//!   on a reader connection via `spawn_blocking` (a fresh role session).
//! - `kms/encrypt_64B_key_user`, `kms/decrypt_64B_key_user`: the public
//!   `Kms::encrypt`/`Kms::decrypt` on the real store, caches warm: key
//!   lookup, condition context, key-policy evaluation, the identity-policy
//!   lookup (the user has none attached),
//!   material read (unwrapped copy cached), seal/open. The closest public route to the
//!   whole authorization path, which is pub(crate).
//! - `kms/encrypt_64B_via_grant`: `Kms::encrypt` by a role session that
//!   only a grant (one of 50 on the key) lets in: adds the grant lookup.
//! - `audit/canonical_json_encrypt`: `AuditRecord::canonical_json` of a
//!   typical allowed Encrypt event.
//! - `audit/chain_hash/<n>B`: `audit::chain_hash` (SHA-256 of the previous
//!   hash and the event body) over that event's canonical JSON.
//!
//! Every run is short (0.5 s warm-up, 2 s measurement per benchmark), so
//! the figures carry a few percent of noise on a shared machine.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kmsd::audit::{AuditRecord, GENESIS, Outcome, chain_hash};
use kmsd::clock::{Clock, SystemClock, Timestamp};
use kmsd::crypto::secret::SecretBytes;
use kmsd::crypto::{BlobHeader, EncryptionContext, KeyMaterial, RootKey, blob};
use kmsd::crypto::{rng, wrap};
use kmsd::identity::{Caller, Principal};
use kmsd::kms::{Kms, KmsSettings, allowing_grant, grantee_names};
use kmsd::model::{
    AccessKeyRecord, AccessKeyStatus, Account, Grant, GrantConstraints, GrantOperation, KeyRecord,
    KeyState, KeyVersion,
};
use kmsd::policy::{Policy, PolicyKind, PrincipalInfo, Request};
use kmsd::store::Store;
use kmsd::store::sqlite::SqliteStore;
use uuid::Uuid;

const ACCOUNT: &str = "111122223333";
const KEY_USER: &str = "arn:aws:iam::111122223333:user/app";
const GRANT_ROLE: &str = "arn:aws:iam::111122223333:role/batch";
const GRANTS_ON_KEY: usize = 50;

/// A typical key policy: the account root may do everything (enabling IAM
/// policies), administrators may manage the key, and the application user
/// may use it only with `Department=Sales` in the encryption context.
const KEY_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Id": "key-consolepolicy-3",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "Allow access for Key Administrators",
      "Effect": "Allow",
      "Principal": {"AWS": [
        "arn:aws:iam::111122223333:user/keyadmin",
        "arn:aws:iam::111122223333:role/KMSAdmin"
      ]},
      "Action": [
        "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*",
        "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*",
        "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
        "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
        "kms:RotateKeyOnDemand"
      ],
      "Resource": "*"
    },
    {
      "Sid": "Allow use of the key",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:user/app"},
      "Action": [
        "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
        "kms:GenerateDataKey*", "kms:DescribeKey"
      ],
      "Resource": "*",
      "Condition": {
        "StringEquals": {"kms:EncryptionContext:Department": "Sales"}
      }
    }
  ]
}"#;

fn context() -> EncryptionContext {
    EncryptionContext::from([("Department", "Sales"), ("Project", "payroll-2026")])
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// ---------------------------------------------------------------- crypto

fn bench_blob(c: &mut Criterion) {
    let material = KeyMaterial::random().expect("rng");
    let key_id = Uuid::new_v4();
    let ctx = context();
    let mut g = c.benchmark_group("blob");
    for (label, len) in [("64B", 64usize), ("4KiB", 4096)] {
        let plaintext = vec![0x5a_u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("seal", label), &plaintext, |b, pt| {
            b.iter(|| {
                blob::seal(&material, key_id, 1, black_box(&ctx), black_box(pt)).expect("seal")
            })
        });
        let sealed = blob::seal(&material, key_id, 1, &ctx, &plaintext).expect("seal");
        g.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, ct| {
            b.iter(|| {
                let header = BlobHeader::parse(black_box(ct)).expect("header");
                blob::open(&material, &header, ct, black_box(&ctx)).expect("open")
            })
        });
    }
    g.finish();
}

fn bench_kdf(c: &mut Criterion) {
    let material = KeyMaterial::random().expect("rng");
    let salt: [u8; 32] = rng::array().expect("rng");
    let mut g = c.benchmark_group("kdf");
    g.bench_function("hkdf_sha256_message_key", |b| {
        b.iter(|| blob::message_key(&material, black_box(&salt)))
    });
    g.bench_function("message_cipher", |b| {
        b.iter(|| blob::message_cipher(&material, black_box(&salt)))
    });
    g.bench_function("rng_salt_and_nonce", |b| {
        b.iter(|| {
            let salt_and_nonce: [u8; 44] = rng::array().expect("rng");
            salt_and_nonce
        })
    });
    g.finish();
}

fn bench_unwrap(c: &mut Criterion) {
    let root = RootKey::from_bytes(rng::array().expect("rng"));
    let key_id = Uuid::new_v4();
    let material = KeyMaterial::random().expect("rng");
    let wrapped = wrap::wrap_key_material(&root, &key_id, 3, &material).expect("wrap");
    let mut g = c.benchmark_group("wrap");
    g.bench_function("unwrap_key_material", |b| {
        b.iter(|| {
            wrap::unwrap_key_material(&root, black_box(&key_id), 3, black_box(&wrapped))
                .expect("unwrap")
        })
    });
    g.finish();
}

// ---------------------------------------------------------------- policy

fn key_user() -> Caller {
    Caller {
        account_id: ACCOUNT.into(),
        arn: KEY_USER.into(),
        principal: Principal::User { name: "app".into() },
        user_id: "AIDABENCHAPPUSER0001".into(),
        access_key_id: "AKIABENCHAPPUSER0001".into(),
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 7))),
        mfa_present: false,
        session_expiry: None,
    }
}

fn role_session(session: &str) -> Caller {
    Caller {
        account_id: ACCOUNT.into(),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/batch/{session}"),
        principal: Principal::AssumedRole {
            role_name: "batch".into(),
            role_path: "/".into(),
            session_name: session.into(),
        },
        user_id: format!("AROABENCHBATCHROLE01:{session}"),
        access_key_id: "ASIABENCHBATCHSESS01".into(),
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 8))),
        mfa_present: false,
        session_expiry: None,
    }
}

fn bench_policy(c: &mut Criterion) {
    let policy = Policy::parse(KEY_POLICY, PolicyKind::Key).expect("valid key policy");
    let caller = key_user();
    let ctx = context();
    let now = SystemClock.now();
    let context = kmsd::kms::condition_context(now, &caller, Some(&ctx));
    let principal = PrincipalInfo {
        arn: caller.arn.clone(),
        account_id: caller.account_id.clone(),
        role_arn: None,
        is_root: false,
    };
    let resource = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{}", Uuid::new_v4());
    let req = Request {
        principal: &principal,
        action: "kms:Encrypt",
        resource: &resource,
        context: &context,
    };
    let outcome = policy.evaluate(&req);
    assert!(outcome.allow_direct && outcome.allow_account && !outcome.explicit_deny);

    let mut g = c.benchmark_group("policy");
    g.bench_function("evaluate_key_user_encrypt", |b| {
        b.iter(|| black_box(&policy).evaluate(black_box(&req)))
    });
    g.bench_function("parse_compile_key_policy", |b| {
        b.iter(|| Policy::parse(black_box(KEY_POLICY), PolicyKind::Key).expect("valid"))
    });
    g.bench_function("condition_context_build", |b| {
        b.iter(|| kmsd::kms::condition_context(now, black_box(&caller), Some(black_box(&ctx))))
    });
    g.finish();
}

// ---------------------------------------------------------------- audit

fn encrypt_event() -> AuditRecord {
    AuditRecord {
        event_id: Uuid::new_v4().to_string(),
        time: Timestamp(1_764_403_200_123),
        request_id: Uuid::new_v4().to_string(),
        account_id: ACCOUNT.into(),
        principal_arn: KEY_USER.into(),
        identity_type: "IAMUser",
        access_key_id: "AKIABENCHAPPUSER0001".into(),
        session_name: String::new(),
        mfa: false,
        source_ip: "10.0.3.7".into(),
        operation: "Encrypt".into(),
        region: "us-east-1".into(),
        key_arns: vec![format!(
            "arn:aws:kms:us-east-1:{ACCOUNT}:key/{}",
            Uuid::new_v4()
        )],
        encryption_context: context().entries().clone(),
        grant_id: String::new(),
        outcome: Outcome::Allowed,
        error_code: String::new(),
        pending_deletion_key: None,
        destination_encryption_context: None,
        parameters: Default::default(),
        response: Default::default(),
    }
}

fn bench_audit(c: &mut Criterion) {
    let record = encrypt_event();
    let body = record.canonical_json(0);
    let prev = chain_hash(&GENESIS, &body);
    let mut g = c.benchmark_group("audit");
    g.bench_function("canonical_json_encrypt", |b| {
        b.iter(|| black_box(&record).canonical_json(0))
    });
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(
        BenchmarkId::new("chain_hash", format!("{}B", body.len())),
        |b| b.iter(|| chain_hash(black_box(&prev), black_box(&body))),
    );
    g.finish();
}

// ------------------------------------------------- grants, store and Kms

/// 50 grants on `key_id`: 48 for other principals, then one Decrypt-only
/// grant and one Encrypt/Decrypt/GenerateDataKey grant constrained to
/// `Department=Sales` for the `batch` role.
fn grants(key_id: Uuid, created: Timestamp) -> Vec<Grant> {
    let sales = BTreeMap::from([("Department".to_owned(), "Sales".to_owned())]);
    (0..GRANTS_ON_KEY)
        .map(|i| {
            let (grantee, operations, constraints) = match GRANTS_ON_KEY - i {
                2 => (
                    GRANT_ROLE.to_owned(),
                    vec![GrantOperation::Decrypt],
                    Some(GrantConstraints::Equals(sales.clone())),
                ),
                1 => (
                    GRANT_ROLE.to_owned(),
                    vec![
                        GrantOperation::Decrypt,
                        GrantOperation::Encrypt,
                        GrantOperation::GenerateDataKey,
                    ],
                    Some(GrantConstraints::Subset(sales.clone())),
                ),
                _ => (
                    format!("arn:aws:iam::{ACCOUNT}:user/worker-{i}"),
                    vec![GrantOperation::Decrypt, GrantOperation::Encrypt],
                    (i % 2 == 0).then(|| GrantConstraints::Subset(sales.clone())),
                ),
            };
            Grant {
                grant_id: format!("{:064x}", i + 1),
                key_id,
                name: format!("bench-{i}"),
                grantee,
                retiring_principal: String::new(),
                issuing_account: ACCOUNT.into(),
                operations,
                constraints,
                created,
            }
        })
        .collect()
}

/// A real SQLite store in a tempdir holding one account, one key (with
/// `KEY_POLICY`) and 50 grants on it, and a `Kms` over it.
struct Fixture {
    rt: tokio::runtime::Runtime,
    kms: Kms,
    store: Arc<dyn Store>,
    key_id: Uuid,
    grants: Vec<Grant>,
    // Dropped last: the store's files live here.
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let root = Arc::new(RootKey::from_bytes(rng::array().expect("rng")));
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("kms.db"), 2, Arc::clone(&clock)).expect("store"),
        );
        let now = clock.now();
        let key_id = Uuid::new_v4();
        let grants = grants(key_id, now);
        rt.block_on(async {
            store
                .create_account(
                    Account {
                        id: ACCOUNT.into(),
                        name: "bench".into(),
                        created: now,
                    },
                    AccessKeyRecord {
                        access_key_id: "AKIABENCHROOT0000001".into(),
                        account_id: ACCOUNT.into(),
                        user_name: None,
                        wrapped_secret: wrap::wrap_credential(
                            &root,
                            "AKIABENCHROOT0000001",
                            b"not used",
                        )
                        .expect("wrap"),
                        status: AccessKeyStatus::Active,
                        created: now,
                    },
                )
                .await
                .expect("account");
            let material = KeyMaterial::random().expect("rng");
            store
                .create_key(
                    KeyRecord {
                        id: key_id,
                        account_id: ACCOUNT.into(),
                        description: "micro-benchmark key".into(),
                        state: KeyState::Enabled,
                        created: now,
                        deletion_date: None,
                        pending_window_days: None,
                        rotation_enabled: false,
                        rotation_period_days: None,
                        next_rotation: None,
                        current_version: 1,
                        policy: KEY_POLICY.into(),
                    },
                    KeyVersion {
                        key_id,
                        version: 1,
                        wrapped_material: wrap::wrap_key_material(&root, &key_id, 1, &material)
                            .expect("wrap"),
                        created: now,
                        rotation_type: None,
                    },
                    Vec::new(),
                )
                .await
                .expect("key");
            for g in &grants {
                store
                    .create_grant(g.clone(), GRANTS_ON_KEY)
                    .await
                    .expect("grant");
            }
        });
        let kms = Kms::new(
            Arc::clone(&store),
            root,
            Arc::clone(&clock),
            KmsSettings::default(),
        );
        Self {
            rt,
            kms,
            store,
            key_id,
            grants,
            _dir: dir,
        }
    }

    /// The grant check of one call, as `Kms::grant_allows` makes it.
    async fn grant_check(&self, caller: &Caller, ctx: &EncryptionContext) -> bool {
        let grants = self
            .store
            .grants_for(self.key_id, grantee_names(caller))
            .await
            .expect("grants_for");
        // The store filtered by grantee; the domain checks the rest.
        allowing_grant(&grants, GrantOperation::Encrypt, Some(ctx)).is_some()
    }
}

fn bench_grants_and_kms(c: &mut Criterion) {
    let f = Fixture::new();
    let ctx = context();
    let session = role_session("s-warm");
    let names = grantee_names(&session);
    // What the store returns for this caller: the grants naming it.
    let mine: Vec<Grant> = f
        .grants
        .iter()
        .filter(|g| names.contains(&g.grantee))
        .cloned()
        .collect();
    assert!(allowing_grant(&mine, GrantOperation::Encrypt, Some(&ctx)).is_some());
    assert!(f.rt.block_on(f.grant_check(&session, &ctx)));

    let mut g = c.benchmark_group("grants");
    g.bench_function("allowing_grant_of_callers", |b| {
        b.iter(|| {
            allowing_grant(
                black_box(&mine),
                GrantOperation::Encrypt,
                Some(black_box(&ctx)),
            )
            .is_some()
        })
    });
    g.bench_function("store_grants_for_cached", |b| {
        b.iter(|| f.rt.block_on(f.grant_check(black_box(&session), &ctx)))
    });
    let mut n = 0u64;
    g.bench_function("store_grants_for_uncached", |b| {
        b.iter_custom(|iters| {
            // Sessions are made outside the timed region.
            let sessions: Vec<Caller> = (0..iters)
                .map(|_| {
                    n += 1;
                    role_session(&format!("s-{n}"))
                })
                .collect();
            let start = Instant::now();
            for s in &sessions {
                assert!(f.rt.block_on(f.grant_check(s, &ctx)));
            }
            start.elapsed()
        })
    });
    g.finish();

    let user = key_user();
    let key_id = f.key_id.to_string();
    let plaintext = [0x5a_u8; 64];
    let (sealed, _) =
        f.rt.block_on(f.kms.encrypt(
            &user,
            &key_id,
            SecretBytes::new(plaintext.to_vec()),
            &ctx,
            &[],
        ))
        .expect("the key user may encrypt");
    let batch = role_session("s-kms");
    f.rt.block_on(f.kms.encrypt(
        &batch,
        &key_id,
        SecretBytes::new(plaintext.to_vec()),
        &ctx,
        &[],
    ))
    .expect("the grant lets the batch role encrypt");

    let mut g = c.benchmark_group("kms");
    g.throughput(Throughput::Bytes(plaintext.len() as u64));
    g.bench_function("encrypt_64B_key_user", |b| {
        b.iter(|| {
            f.rt.block_on(f.kms.encrypt(
                black_box(&user),
                &key_id,
                SecretBytes::new(plaintext.to_vec()),
                black_box(&ctx),
                &[],
            ))
            .expect("encrypt")
        })
    });
    g.bench_function("decrypt_64B_key_user", |b| {
        b.iter(|| {
            f.rt.block_on(f.kms.decrypt(
                black_box(&user),
                black_box(&sealed),
                None,
                black_box(&ctx),
                &[],
            ))
            .expect("decrypt")
        })
    });
    g.bench_function("encrypt_64B_via_grant", |b| {
        b.iter(|| {
            f.rt.block_on(f.kms.encrypt(
                black_box(&batch),
                &key_id,
                SecretBytes::new(plaintext.to_vec()),
                black_box(&ctx),
                &[],
            ))
            .expect("encrypt")
        })
    });
    g.finish();
}

criterion_group! {
    name = micro;
    config = config();
    targets = bench_blob, bench_kdf, bench_unwrap, bench_policy, bench_grants_and_kms, bench_audit
}
criterion_main!(micro);
