//! Authentication and IdentityService: bad credentials, accounts (operator
//! only), users, access keys and caller identity.

use std::collections::HashSet;

use kmsd::pb;
use kmsd::pb::identity_service_client::IdentityServiceClient;
use kmsd::pb::key_management_service_client::KeyManagementServiceClient;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::common::{Creds, TestDaemon, assert_err};
use crate::util::*;

/// Clients that add no credentials of their own.
async fn raw_clients(
    d: &TestDaemon,
) -> (
    KeyManagementServiceClient<Channel>,
    IdentityServiceClient<Channel>,
) {
    let ch = kmsd::client::connect(&d.endpoint).await.expect("connect");
    (
        KeyManagementServiceClient::new(ch.clone()),
        IdentityServiceClient::new(ch),
    )
}

/// A request with `authorization` set to `header` (or absent).
fn req<T>(msg: T, header: Option<MetadataValue<Ascii>>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(h) = header {
        r.metadata_mut().insert("authorization", h);
    }
    r
}

fn hv(s: &str) -> MetadataValue<Ascii> {
    s.parse().expect("a valid header value")
}

async fn caller(
    d: &TestDaemon,
    creds: &Creds,
) -> Result<pb::GetCallerIdentityResponse, tonic::Status> {
    d.identity_client(creds)
        .await
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated() {
    let d = TestDaemon::start().await;
    let mut admin = d.admin_kms().await;
    create_key(&mut admin).await;
    let keys_before = all_key_ids(&mut admin).await;
    let (mut kms, mut iam) = raw_clients(&d).await;
    let id = &d.admin.access_key_id;
    let secret = &d.admin.secret;

    // The right header works through the raw client too.
    let ok = iam
        .get_caller_identity(req(
            pb::GetCallerIdentityRequest {},
            Some(hv(&format!("Bearer {id}:{secret}"))),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.account, d.admin.account_id);

    let mut wrong_secret = secret.clone().into_bytes();
    wrong_secret[0] = if wrong_secret[0] == b'A' { b'B' } else { b'A' };
    let wrong_secret = String::from_utf8(wrong_secret).unwrap();
    let mut headers: Vec<(String, Option<MetadataValue<Ascii>>)> = vec![
        ("missing header".into(), None),
        (
            "unknown access key id".into(),
            Some(hv(&format!("Bearer AKIAUNKNOWNUNKNOWN00:{secret}"))),
        ),
        (
            "wrong secret".into(),
            Some(hv(&format!("Bearer {id}:{wrong_secret}"))),
        ),
        (
            "secret with a byte more".into(),
            Some(hv(&format!("Bearer {id}:{secret}x"))),
        ),
        (
            "secret with a byte less".into(),
            Some(hv(&format!("Bearer {id}:{}", &secret[..secret.len() - 1]))),
        ),
        ("another key's secret".into(), {
            let op = &d.operator.secret;
            Some(hv(&format!("Bearer {id}:{op}")))
        }),
        ("empty".into(), Some(hv(""))),
        ("scheme only".into(), Some(hv("Bearer"))),
        ("scheme and space".into(), Some(hv("Bearer "))),
        ("no colon".into(), Some(hv(&format!("Bearer {id}{secret}")))),
        ("empty id".into(), Some(hv(&format!("Bearer :{secret}")))),
        ("empty secret".into(), Some(hv(&format!("Bearer {id}:")))),
        (
            "other scheme".into(),
            Some(hv(&format!("Basic {id}:{secret}"))),
        ),
        ("no scheme".into(), Some(hv(&format!("{id}:{secret}")))),
        ("garbage".into(), Some(hv("&*(not a credential at all)*&"))),
    ];
    if let Ok(v) = MetadataValue::<Ascii>::try_from(b"Bearer \xffAKIA:\xfe".as_slice()) {
        headers.push(("non-ASCII bytes".into(), Some(v)));
    }

    for (what, h) in headers {
        let r = kms
            .create_key(req(pb::CreateKeyRequest::default(), h.clone()))
            .await;
        let s = r.expect_err(&what);
        assert_eq!(s.code(), Code::Unauthenticated, "{what}: {s:?}");
        assert_eq!(
            crate::common::error_name(&s),
            "UnrecognizedClientException",
            "{what}: {s:?}"
        );
        assert!(
            !s.message().contains(secret.as_str()),
            "{what}: the message echoes the secret"
        );
        let r = iam
            .get_caller_identity(req(pb::GetCallerIdentityRequest {}, h.clone()))
            .await;
        assert_err(r, Code::Unauthenticated, "UnrecognizedClientException");
        let r = iam
            .create_user(req(
                pb::CreateUserRequest {
                    user_name: "intruder".into(),
                    path: None,
                },
                h,
            ))
            .await;
        assert_err(r, Code::Unauthenticated, "UnrecognizedClientException");
    }

    // The refused calls created nothing.
    assert_eq!(all_key_ids(&mut admin).await, keys_before);
    let users = d
        .identity_client(&d.root)
        .await
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(users.iter().all(|u| u.user_name != "intruder"));
}

#[tokio::test]
async fn only_the_operator_creates_accounts() {
    let d = TestDaemon::start().await;
    let create = |name: &str| pb::CreateAccountRequest {
        account_name: name.to_owned(),
    };

    // The admin user of an ordinary account may not.
    let mut admin_iam = d.identity_client(&d.root).await;
    assert_err(
        admin_iam.create_account(create("nope")).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // The operator may.
    let mut op = d.identity_client(&d.operator).await;
    let me = op
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.account, "000000000000");
    assert_eq!(me.arn, "arn:aws:iam::000000000000:root");

    let r = op
        .create_account(create("team-b"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.account_id.len(), 12);
    assert!(r.account_id.bytes().all(|b| b.is_ascii_digit()));
    assert_ne!(r.account_id, d.admin.account_id);
    assert_ne!(r.account_id, "000000000000");
    assert_eq!(r.root_arn, format!("arn:aws:iam::{}:root", r.account_id));
    let rc = r.root_credentials.expect("root credentials");
    assert_eq!(rc.access_key_id.len(), 20);
    assert!(rc.access_key_id.starts_with("AKIA"));
    assert_eq!(rc.secret_access_key.len(), 40);
    assert_eq!(rc.session_token, None);
    assert_eq!(rc.expiration, None);
    let root = Creds {
        account_id: r.account_id.clone(),
        access_key_id: rc.access_key_id,
        secret: rc.secret_access_key,
    };

    // The root credentials work.
    let who = caller(&d, &root).await.unwrap();
    assert_eq!(who.account, r.account_id);
    assert_eq!(who.arn, format!("arn:aws:iam::{}:root", r.account_id));
    assert_eq!(
        who.user_id, r.account_id,
        "a root's user id is its account id (as in AWS)"
    );
    let mut root_kms = d.kms_client(&root).await;
    let k = create_key(&mut root_kms).await;
    assert_eq!(k.aws_account_id, r.account_id);

    // A second account is a different one.
    let r2 = op
        .create_account(create("team-c"))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(r2.account_id, r.account_id);

    // A new account's root is not the operator.
    let mut root_iam = d.identity_client(&root).await;
    assert_err(
        root_iam.create_account(create("nested")).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // Nor is a user of the operator's own account.
    op.create_user(pb::CreateUserRequest {
        user_name: "ops".into(),
        path: None,
    })
    .await
    .unwrap();
    let ak = op
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("ops".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    let ops = Creds {
        account_id: "000000000000".into(),
        access_key_id: ak.access_key_id,
        secret: ak.secret_access_key,
    };
    assert_eq!(
        caller(&d, &ops).await.unwrap().arn,
        "arn:aws:iam::000000000000:user/ops"
    );
    assert_err(
        d.identity_client(&ops)
            .await
            .create_account(create("by-ops"))
            .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // A name is required.
    assert_err(
        op.create_account(create("")).await,
        Code::InvalidArgument,
        "ValidationException",
    );
}

#[tokio::test]
async fn create_user_rules() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    let acct = &d.admin.account_id;
    let u = iam
        .create_user(pb::CreateUserRequest {
            user_name: "alice".into(),
            path: None,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(u.user_name, "alice");
    assert_eq!(u.arn, format!("arn:aws:iam::{acct}:user/alice"));
    assert_eq!(u.path, "/");
    assert!(u.user_id.starts_with("AIDA"), "{}", u.user_id);
    assert!(u.create_date.is_some());

    let u2 = iam
        .create_user(pb::CreateUserRequest {
            user_name: "bob+ops=1,x.y@z_w-v".into(),
            path: Some("/division/team/".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        u2.arn,
        format!("arn:aws:iam::{acct}:user/division/team/bob+ops=1,x.y@z_w-v")
    );
    assert_ne!(u2.user_id, u.user_id);
    let longest = "n".repeat(64);
    iam.create_user(pb::CreateUserRequest {
        user_name: longest,
        path: None,
    })
    .await
    .unwrap();

    // Duplicate.
    let r = iam
        .create_user(pb::CreateUserRequest {
            user_name: "alice".into(),
            path: Some("/other/".into()),
        })
        .await;
    assert_err(r, Code::AlreadyExists, "AlreadyExistsException");
    // The bootstrap's admin exists already.
    let r = iam
        .create_user(pb::CreateUserRequest {
            user_name: "admin".into(),
            path: None,
        })
        .await;
    assert_err(r, Code::AlreadyExists, "AlreadyExistsException");

    // Bad names and paths.
    let too_long = "n".repeat(65);
    for bad in [
        "",
        "has space",
        "slash/name",
        "col:on",
        "\u{fc}ber",
        too_long.as_str(),
    ] {
        let r = iam
            .create_user(pb::CreateUserRequest {
                user_name: bad.to_owned(),
                path: None,
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
    for bad in ["no-slashes", "/no-trailing", "no-leading/"] {
        let r = iam
            .create_user(pb::CreateUserRequest {
                user_name: "pathological".into(),
                path: Some(bad.to_owned()),
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }

    // The same name in another account is another user.
    let other = new_account(&d, "other").await;
    let mut other_iam = d.identity_client(&other).await;
    let theirs = other_iam
        .create_user(pb::CreateUserRequest {
            user_name: "alice".into(),
            path: None,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        theirs.arn,
        format!("arn:aws:iam::{}:user/alice", other.account_id)
    );
    let theirs_listed: Vec<String> = other_iam
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert_eq!(theirs_listed, vec!["alice".to_owned()]);
}

/// IAM user names are unique without regard to case: AWS refuses "Alice"
/// when "alice" exists ("User names are not distinguished by case").
#[tokio::test]
async fn user_names_are_unique_regardless_of_case() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    iam.create_user(pb::CreateUserRequest {
        user_name: "alice".into(),
        path: None,
    })
    .await
    .unwrap();
    let r = iam
        .create_user(pb::CreateUserRequest {
            user_name: "ALICE".into(),
            path: None,
        })
        .await;
    assert_err(r, Code::AlreadyExists, "AlreadyExistsException");
}

#[tokio::test]
async fn list_users_pages() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    let mut expected: HashSet<String> = HashSet::from(["admin".to_owned()]);
    for i in 0..6 {
        let name = format!("user-{i}");
        iam.create_user(pb::CreateUserRequest {
            user_name: name.clone(),
            path: None,
        })
        .await
        .unwrap();
        expected.insert(name);
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut marker = None;
    loop {
        let page = iam
            .list_users(pb::ListUsersRequest {
                limit: Some(3),
                marker: marker.take(),
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.users.len());
        for u in &page.users {
            assert_eq!(
                u.arn,
                format!("arn:aws:iam::{}:user/{}", d.admin.account_id, u.user_name)
            );
        }
        seen.extend(page.users.into_iter().map(|u| u.user_name));
        if page.truncated {
            marker = Some(page.next_marker.expect("next_marker"));
        } else {
            assert_eq!(page.next_marker, None);
            break;
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);

    for limit in [0, 1001] {
        let r = iam
            .list_users(pb::ListUsersRequest {
                limit: Some(limit),
                marker: None,
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
}

#[tokio::test]
async fn access_keys_lifecycle() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    let acct = d.admin.account_id.clone();
    let dave = iam
        .create_user(pb::CreateUserRequest {
            user_name: "dave".into(),
            path: None,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    allow_all_kms(&d, "dave").await;

    // First key, made by the admin for dave.
    let k1 = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("dave".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    assert_eq!(k1.user_name, "dave");
    assert_eq!(k1.status, pb::AccessKeyStatus::Active as i32);
    assert_eq!(k1.access_key_id.len(), 20);
    assert!(k1.access_key_id.starts_with("AKIA"));
    assert_eq!(k1.secret_access_key.len(), 40);
    let dave1 = Creds {
        account_id: acct.clone(),
        access_key_id: k1.access_key_id.clone(),
        secret: k1.secret_access_key.clone(),
    };

    // It authenticates as dave.
    let who = caller(&d, &dave1).await.unwrap();
    assert_eq!(who.account, acct);
    assert_eq!(who.arn, format!("arn:aws:iam::{acct}:user/dave"));
    assert_eq!(who.user_id, dave.user_id);
    let mut dave_kms = d.kms_client(&dave1).await;
    let key = create_key(&mut dave_kms).await;
    assert_eq!(key.aws_account_id, acct);

    // Second key, made by dave for himself (no user name).
    let k2 = d
        .identity_client(&dave1)
        .await
        .create_access_key(pb::CreateAccessKeyRequest { user_name: None })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    assert_eq!(k2.user_name, "dave");
    assert_ne!(k2.access_key_id, k1.access_key_id);
    assert_ne!(k2.secret_access_key, k1.secret_access_key);
    let dave2 = Creds {
        account_id: acct.clone(),
        access_key_id: k2.access_key_id.clone(),
        secret: k2.secret_access_key.clone(),
    };
    assert_eq!(caller(&d, &dave2).await.unwrap().arn, who.arn);

    // A third is over the quota of two.
    let r = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("dave".into()),
        })
        .await;
    assert_err(r, Code::ResourceExhausted, "LimitExceededException");

    // Listing shows both, without secrets.
    let listed = iam
        .list_access_keys(pb::ListAccessKeysRequest {
            user_name: Some("dave".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key_metadata;
    let ids: HashSet<&str> = listed.iter().map(|k| k.access_key_id.as_str()).collect();
    assert_eq!(
        ids,
        HashSet::from([k1.access_key_id.as_str(), k2.access_key_id.as_str()])
    );
    assert!(listed.iter().all(|k| k.user_name == "dave"));

    // A key of an unknown user.
    let r = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("nobody".into()),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");

    // Delete the first: it stops working at once, the second still works.
    iam.delete_access_key(pb::DeleteAccessKeyRequest {
        access_key_id: k1.access_key_id.clone(),
        user_name: Some("dave".into()),
    })
    .await
    .unwrap();
    assert_err(
        caller(&d, &dave1).await,
        Code::Unauthenticated,
        "UnrecognizedClientException",
    );
    // Even on a client made before the deletion.
    assert_err(
        encrypt(&mut dave_kms, &key.key_id, b"x", &ctx(&[])).await,
        Code::Unauthenticated,
        "UnrecognizedClientException",
    );
    assert_eq!(caller(&d, &dave2).await.unwrap().arn, who.arn);
    let r = iam
        .delete_access_key(pb::DeleteAccessKeyRequest {
            access_key_id: k1.access_key_id.clone(),
            user_name: Some("dave".into()),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");

    // Now a new one fits under the quota.
    let k3 = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("dave".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();

    // Delete the rest, then the user.
    for k in [&k2.access_key_id, &k3.access_key_id] {
        iam.delete_access_key(pb::DeleteAccessKeyRequest {
            access_key_id: k.clone(),
            user_name: Some("dave".into()),
        })
        .await
        .unwrap();
    }
    assert_err(
        caller(&d, &dave2).await,
        Code::Unauthenticated,
        "UnrecognizedClientException",
    );
    iam.delete_user(pb::DeleteUserRequest {
        user_name: "dave".into(),
    })
    .await
    .unwrap();
    let names: Vec<String> = iam
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert_eq!(names, vec!["admin".to_owned()]);
    let r = iam
        .delete_user(pb::DeleteUserRequest {
            user_name: "dave".into(),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
    // The key dave made is the account's and survives him.
    assert_eq!(
        describe(&mut d.admin_kms().await, &key.key_id)
            .await
            .unwrap()
            .key_id,
        key.key_id
    );
}

#[tokio::test]
async fn deleting_a_user_with_keys_never_leaves_them_usable() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    iam.create_user(pb::CreateUserRequest {
        user_name: "erin".into(),
        path: None,
    })
    .await
    .unwrap();
    let k = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("erin".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    let erin = Creds {
        account_id: d.admin.account_id.clone(),
        access_key_id: k.access_key_id,
        secret: k.secret_access_key,
    };
    caller(&d, &erin).await.unwrap();
    // AWS refuses (DeleteConflict) while keys remain; kmsd may instead
    // delete them with the user. Either way the key must not outlive the user.
    match iam
        .delete_user(pb::DeleteUserRequest {
            user_name: "erin".into(),
        })
        .await
    {
        Ok(_) => {
            assert_err(
                caller(&d, &erin).await,
                Code::Unauthenticated,
                "UnrecognizedClientException",
            );
            // A new user of the same name does not inherit the old key.
            iam.create_user(pb::CreateUserRequest {
                user_name: "erin".into(),
                path: None,
            })
            .await
            .unwrap();
            assert_err(
                caller(&d, &erin).await,
                Code::Unauthenticated,
                "UnrecognizedClientException",
            );
            let keys = iam
                .list_access_keys(pb::ListAccessKeysRequest {
                    user_name: Some("erin".into()),
                })
                .await
                .unwrap()
                .into_inner()
                .access_key_metadata;
            assert!(keys.is_empty(), "{keys:?}");
        }
        Err(_) => {
            caller(&d, &erin).await.expect("erin still exists");
        }
    };
    // A user name is checked before anything is deleted.
    let r = iam
        .delete_user(pb::DeleteUserRequest {
            user_name: "bad name".into(),
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
}

#[tokio::test]
async fn access_keys_of_other_users_and_accounts() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    for u in ["frank", "grace"] {
        iam.create_user(pb::CreateUserRequest {
            user_name: u.into(),
            path: None,
        })
        .await
        .unwrap();
    }
    let fk = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("frank".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    // Deleting frank's key as if it were grace's: not found, and it still works.
    let r = iam
        .delete_access_key(pb::DeleteAccessKeyRequest {
            access_key_id: fk.access_key_id.clone(),
            user_name: Some("grace".into()),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
    let frank = Creds {
        account_id: d.admin.account_id.clone(),
        access_key_id: fk.access_key_id.clone(),
        secret: fk.secret_access_key.clone(),
    };
    caller(&d, &frank).await.unwrap();

    // Another account cannot delete it either.
    let other = new_account(&d, "other").await;
    let mut other_iam = d.identity_client(&other).await;
    let r = other_iam
        .delete_access_key(pb::DeleteAccessKeyRequest {
            access_key_id: fk.access_key_id.clone(),
            user_name: None,
        })
        .await;
    assert!(r.is_err(), "another account deleted frank's key");
    caller(&d, &frank).await.unwrap();
    // Nor see frank.
    let r = other_iam
        .list_access_keys(pb::ListAccessKeysRequest {
            user_name: Some("frank".into()),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
}

/// API.md: CreateAccessKey / DeleteAccessKey / ListAccessKeys may be called
/// by "the user itself or admin". A user without any identity policy must
/// not mint, list or delete another user's keys: minting a key for `admin`
/// would make it `admin`.
#[tokio::test]
async fn a_plain_user_cannot_manage_another_users_access_keys() {
    let d = TestDaemon::start().await;
    let mut iam = d.identity_client(&d.root).await;
    iam.create_user(pb::CreateUserRequest {
        user_name: "mallory".into(),
        path: None,
    })
    .await
    .unwrap();
    let k = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("mallory".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    let mallory = Creds {
        account_id: d.admin.account_id.clone(),
        access_key_id: k.access_key_id,
        secret: k.secret_access_key,
    };
    let mut m_iam = d.identity_client(&mallory).await;

    let r = m_iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("admin".into()),
        })
        .await;
    if let Ok(created) = &r {
        // Show what that means before failing.
        let ak = created.get_ref().access_key.clone().unwrap();
        let stolen = Creds {
            account_id: d.admin.account_id.clone(),
            access_key_id: ak.access_key_id,
            secret: ak.secret_access_key,
        };
        let who = caller(&d, &stolen).await.unwrap();
        panic!(
            "mallory minted an access key that authenticates as {}",
            who.arn
        );
    }
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");

    let r = m_iam
        .list_access_keys(pb::ListAccessKeysRequest {
            user_name: Some("admin".into()),
        })
        .await;
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    let r = m_iam
        .delete_access_key(pb::DeleteAccessKeyRequest {
            access_key_id: d.admin.access_key_id.clone(),
            user_name: Some("admin".into()),
        })
        .await;
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    caller(&d, &d.admin)
        .await
        .expect("the admin's key still works");

    // Her own keys are hers to manage.
    let own = m_iam
        .list_access_keys(pb::ListAccessKeysRequest { user_name: None })
        .await
        .unwrap()
        .into_inner()
        .access_key_metadata;
    assert_eq!(own.len(), 1);
}

/// Managing users needs the account root or an identity policy that allows
/// it: a user without one may not create, list or delete users, and the
/// refusal changes nothing; the bootstrap `admin` (AdministratorAccess) may.
#[tokio::test]
async fn managing_users_needs_root_or_a_policy() {
    let d = TestDaemon::start().await;
    let mut root = d.identity_client(&d.root).await;
    root.create_user(pb::CreateUserRequest {
        user_name: "plain".into(),
        path: None,
    })
    .await
    .unwrap();
    let key = root
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("plain".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    let plain = Creds {
        account_id: d.admin.account_id.clone(),
        access_key_id: key.access_key_id,
        secret: key.secret_access_key,
    };
    let mut plain_iam = d.identity_client(&plain).await;
    assert_err(
        plain_iam
            .create_user(pb::CreateUserRequest {
                user_name: "eve".into(),
                path: None,
            })
            .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        plain_iam.list_users(pb::ListUsersRequest::default()).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        plain_iam
            .delete_user(pb::DeleteUserRequest {
                user_name: "admin".into(),
            })
            .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    let users = root
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    let names: Vec<&str> = users.iter().map(|u| u.user_name.as_str()).collect();
    assert_eq!(
        names,
        ["admin", "plain"],
        "the refused calls changed nothing"
    );
    let mut admin = d.identity_client(&d.admin).await;
    admin
        .create_user(pb::CreateUserRequest {
            user_name: "eve".into(),
            path: None,
        })
        .await
        .expect("the admin's AdministratorAccess policy allows CreateUser");
    let me = root
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.arn, format!("arn:aws:iam::{}:root", d.admin.account_id));
}

/// A deleted access key's unwrapped secret leaves memory with it.
#[tokio::test]
async fn a_deleted_access_keys_secret_leaves_the_cache() {
    let d = TestDaemon::start().await;
    let carol = crate::authz_util::new_user(&d, &d.admin, "carol").await;
    let cached = || d.kms.credential_cache().len();
    let before = cached();
    // Any call with carol's key unwraps her secret.
    let r = caller(&d, &carol).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(cached(), before + 1, "carol's secret is cached");
    let delete = || async {
        d.identity_client(&d.admin)
            .await
            .delete_access_key(pb::DeleteAccessKeyRequest {
                access_key_id: carol.access_key_id.clone(),
                user_name: Some("carol".into()),
            })
            .await
    };
    // A deletion that cannot be recorded is undone, and the secret stays:
    // it is dropped only once the deletion commits.
    let db = crate::audit_util::open_db(&d.file("kmsd.db"));
    db.execute_batch(crate::audit_util::BLOCK).unwrap();
    assert_err(delete().await, Code::Internal, "KMSInternalException");
    assert_eq!(cached(), before + 1, "kept while the key still exists");
    db.execute_batch("DROP TRIGGER block;").unwrap();
    let r = caller(&d, &carol).await;
    assert!(r.is_ok(), "carol's key still works: {r:?}");
    delete().await.unwrap();
    assert_eq!(cached(), before, "and forgotten when the key is deleted");
}

/// Field 1 (`key_id`, a string) as bytes that are not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct KeyIdAsBytes {
    #[prost(bytes = "vec", tag = "1")]
    key_id: Vec<u8>,
}

/// Field 1 as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct KeyIdAsVarint {
    #[prost(uint64, tag = "1")]
    key_id: u64,
}

/// Sends `msg` to `path` as a client with a wrong schema would.
async fn send_misshapen<M: prost::Message + Send + Sync + 'static>(
    ch: &Channel,
    path: &'static str,
    msg: M,
    header: Option<MetadataValue<Ascii>>,
) -> Result<tonic::Response<pb::DescribeKeyResponse>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.expect("ready");
    grpc.unary(
        req(msg, header),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
}

/// A request that is not a well-formed message of its method's type is a
/// bad parameter: INVALID_ARGUMENT with ValidationException in its
/// ErrorInfo, as API.md says of every failure, not tonic's bare INTERNAL.
/// With or without credentials; nothing happens.
#[tokio::test]
async fn an_undecodable_request_is_a_validation_error() {
    let d = TestDaemon::start().await;
    let mut admin = d.admin_kms().await;
    let keys_before = all_key_ids(&mut admin).await;
    let ch = kmsd::client::connect(&d.endpoint).await.expect("connect");
    let auth = hv(&format!(
        "Bearer {}:{}",
        d.admin.access_key_id, d.admin.secret
    ));
    for header in [Some(auth), None] {
        for (what, r) in [
            (
                "DescribeKey, key_id not UTF-8",
                send_misshapen(
                    &ch,
                    "/kms.v1.KeyManagementService/DescribeKey",
                    KeyIdAsBytes {
                        key_id: vec![0xff, 0xfe],
                    },
                    header.clone(),
                )
                .await,
            ),
            (
                "CreateKey, field 1 a varint",
                send_misshapen(
                    &ch,
                    "/kms.v1.KeyManagementService/CreateKey",
                    KeyIdAsVarint { key_id: 7 },
                    header.clone(),
                )
                .await,
            ),
        ] {
            let s = assert_err(r, Code::InvalidArgument, "ValidationException");
            assert!(s.message().contains("protobuf"), "{what}: {s:?}");
        }
    }
    assert_eq!(all_key_ids(&mut admin).await, keys_before);
}
