//! Aliases (CreateAlias, UpdateAlias, DeleteAlias, ListAliases) and tags
//! (TagResource, UntagResource, ListResourceTags).

use std::collections::HashSet;

use kmsd::client::KmsClient;
use kmsd::pb;
use tonic::Code;

use crate::common::{TestDaemon, assert_err, error_name};
use crate::util::*;

fn tag(k: &str, v: &str) -> pb::Tag {
    pb::Tag {
        tag_key: k.to_owned(),
        tag_value: v.to_owned(),
    }
}

async fn tag_resource(
    kms: &mut KmsClient,
    key_id: &str,
    tags: Vec<pb::Tag>,
) -> Result<(), tonic::Status> {
    kms.tag_resource(pb::TagResourceRequest {
        key_id: key_id.to_owned(),
        tags,
    })
    .await
    .map(|_| ())
}

/// Every tag of a key (all pages), sorted by key.
async fn all_tags(kms: &mut KmsClient, key_id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_resource_tags(pb::ListResourceTagsRequest {
                key_id: key_id.to_owned(),
                limit: None,
                marker: marker.take(),
            })
            .await
            .expect("ListResourceTags")
            .into_inner();
        out.extend(page.tags.into_iter().map(|t| (t.tag_key, t.tag_value)));
        match page.next_marker {
            Some(m) if page.truncated => marker = Some(m),
            _ => break,
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn create_alias_name_rules() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    let longest = format!("alias/{}", "x".repeat(250));
    assert_eq!(longest.len(), 256);
    for ok in [
        "alias/a",
        "alias/my-app/prod_1",
        "alias/UPPER-lower_09",
        "alias/awsome",
        "alias/aws-like",
        longest.as_str(),
    ] {
        create_alias(&mut kms, ok, &m.key_id)
            .await
            .unwrap_or_else(|s| panic!("{ok}: {s:?}"));
    }

    let too_long = format!("alias/{}", "x".repeat(251));
    for bad in [
        "a",
        "my-alias",
        "alias",
        "alias/",
        "Alias/x",
        "ALIAS/x",
        "alias/has space",
        "alias/dot.ted",
        "alias/col:on",
        "alias/\u{e9}t\u{e9}",
        "alias/aws/s3",
        "alias/aws/anything",
        too_long.as_str(),
    ] {
        assert_err(
            create_alias(&mut kms, bad, &m.key_id).await,
            Code::InvalidArgument,
            "InvalidAliasNameException",
        );
    }
    let names: HashSet<String> = all_aliases(&mut kms)
        .await
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(
        names.len(),
        6,
        "only the valid names were created: {names:?}"
    );
}

#[tokio::test]
async fn create_alias_conflicts_and_bad_targets() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    let b = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/app", &a.key_id)
        .await
        .unwrap();

    // Duplicate name, whatever the target.
    for target in [&a.key_id, &b.key_id] {
        assert_err(
            create_alias(&mut kms, "alias/app", target).await,
            Code::AlreadyExists,
            "AlreadyExistsException",
        );
    }
    // The target may be a key ARN ...
    create_alias(&mut kms, "alias/by-arn", &b.arn)
        .await
        .unwrap();
    // ... but not an alias.
    assert_err(
        create_alias(&mut kms, "alias/chained", "alias/app").await,
        Code::InvalidArgument,
        "ValidationException",
    );
    let alias_arn = format!("arn:aws:kms:us-east-1:{}:alias/app", d.admin.account_id);
    assert_err(
        create_alias(&mut kms, "alias/chained", &alias_arn).await,
        Code::InvalidArgument,
        "ValidationException",
    );
    // A key that does not exist.
    assert_err(
        create_alias(&mut kms, "alias/nothing", &uuid::Uuid::new_v4().to_string()).await,
        Code::NotFound,
        "NotFoundException",
    );
    // A key pending deletion.
    let p = create_key(&mut kms).await;
    schedule_deletion(&mut kms, &p.key_id, Some(7))
        .await
        .unwrap();
    assert_err(
        create_alias(&mut kms, "alias/pending", &p.key_id).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    // A disabled key is a valid target.
    disable(&mut kms, &b.key_id).await;
    create_alias(&mut kms, "alias/disabled-target", &b.key_id)
        .await
        .unwrap();

    // The alias resolves to its key.
    assert_eq!(
        describe(&mut kms, "alias/app").await.unwrap().key_id,
        a.key_id
    );
    assert_eq!(
        describe(&mut kms, "alias/by-arn").await.unwrap().key_id,
        b.key_id
    );
    let names: HashSet<String> = all_aliases(&mut kms)
        .await
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(
        names,
        ["alias/app", "alias/by-arn", "alias/disabled-target"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[tokio::test]
async fn alias_names_are_per_account() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let mine = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/shared-name", &mine.key_id)
        .await
        .unwrap();
    let other = new_account(&d, "other").await;
    let mut theirs = d.kms_client(&other).await;
    let k = create_key(&mut theirs).await;
    create_alias(&mut theirs, "alias/shared-name", &k.key_id)
        .await
        .expect("the same alias name in another account");
    assert_eq!(
        describe(&mut kms, "alias/shared-name")
            .await
            .unwrap()
            .key_id,
        mine.key_id
    );
    assert_eq!(
        describe(&mut theirs, "alias/shared-name")
            .await
            .unwrap()
            .key_id,
        k.key_id
    );
    // An alias may not point at another account's key.
    let r = create_alias(&mut kms, "alias/cross", &k.arn).await;
    assert!(r.is_err(), "an alias to another account's key was created");
    assert_eq!(all_aliases(&mut kms).await.len(), 1);
}

#[tokio::test]
async fn update_alias_retargets() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    let b = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/current", &a.key_id)
        .await
        .unwrap();
    let e = encrypt(&mut kms, "alias/current", b"x", &ctx(&[]))
        .await
        .unwrap();
    assert_eq!(e.key_id, a.arn);
    let old_blob = e.ciphertext_blob;

    let before = all_aliases(&mut kms).await;
    d.advance(DAY);
    kms.update_alias(pb::UpdateAliasRequest {
        alias_name: "alias/current".into(),
        target_key_id: b.key_id.clone(),
    })
    .await
    .unwrap();

    let e = encrypt(&mut kms, "alias/current", b"y", &ctx(&[]))
        .await
        .unwrap();
    assert_eq!(e.key_id, b.arn, "Encrypt via the alias uses the new key");
    assert_eq!(blob_key_id(&e.ciphertext_blob).to_string(), b.key_id);
    assert_eq!(
        describe(&mut kms, "alias/current").await.unwrap().key_id,
        b.key_id
    );
    // Old blobs name their key, not the alias: still decryptable.
    assert_eq!(decrypt_ok(&mut kms, &old_blob).await, b"x");
    // ... and with the alias now naming another key, an explicit key_id mismatches.
    assert_err(
        decrypt_with_key(&mut kms, &old_blob, Some("alias/current"), &ctx(&[])).await,
        Code::InvalidArgument,
        "IncorrectKeyException",
    );

    let after = all_aliases(&mut kms).await;
    let (b4, af) = (&before[0], &after[0]);
    assert_eq!(af.target_key_id, b.key_id);
    assert_eq!(
        af.creation_date, b4.creation_date,
        "creation date unchanged"
    );
    assert_eq!(
        af.last_updated_date.as_ref().map(ts_ms),
        Some(now_ms(&d)),
        "last_updated_date is the update's time"
    );

    // Bad updates.
    let upd = |name: &str, target: &str| pb::UpdateAliasRequest {
        alias_name: name.to_owned(),
        target_key_id: target.to_owned(),
    };
    assert_err(
        kms.update_alias(upd("alias/missing", &a.key_id)).await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        kms.update_alias(upd("alias/current", "alias/current"))
            .await,
        Code::InvalidArgument,
        "ValidationException",
    );
    assert_err(
        kms.update_alias(upd("alias/current", &uuid::Uuid::new_v4().to_string()))
            .await,
        Code::NotFound,
        "NotFoundException",
    );
    schedule_deletion(&mut kms, &a.key_id, Some(7))
        .await
        .unwrap();
    assert_err(
        kms.update_alias(upd("alias/current", &a.key_id)).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    assert_eq!(
        describe(&mut kms, "alias/current").await.unwrap().key_id,
        b.key_id
    );
}

#[tokio::test]
async fn delete_alias() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/gone-soon", &a.key_id)
        .await
        .unwrap();
    create_alias(&mut kms, "alias/stays", &a.key_id)
        .await
        .unwrap();
    kms.delete_alias(pb::DeleteAliasRequest {
        alias_name: "alias/gone-soon".into(),
    })
    .await
    .unwrap();
    assert_err(
        describe(&mut kms, "alias/gone-soon").await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        encrypt(&mut kms, "alias/gone-soon", b"x", &ctx(&[])).await,
        Code::NotFound,
        "NotFoundException",
    );
    let r = kms
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: "alias/gone-soon".into(),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
    let r = kms
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: "alias/never-was".into(),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
    // The key and the other alias are untouched, and the name is free again.
    assert_eq!(
        describe(&mut kms, "alias/stays").await.unwrap().key_id,
        a.key_id
    );
    create_alias(&mut kms, "alias/gone-soon", &a.key_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn list_aliases_filters_by_key_and_pages() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    let b = create_key(&mut kms).await;
    let unaliased = create_key(&mut kms).await;
    let a_names: Vec<String> = (0..5).map(|i| format!("alias/a-{i}")).collect();
    for n in &a_names {
        create_alias(&mut kms, n, &a.key_id).await.unwrap();
    }
    for n in ["alias/b-0", "alias/b-1"] {
        create_alias(&mut kms, n, &b.key_id).await.unwrap();
    }

    let all = all_aliases(&mut kms).await;
    assert_eq!(all.len(), 7);
    for e in &all {
        assert_eq!(
            e.alias_arn,
            format!(
                "arn:aws:kms:us-east-1:{}:{}",
                d.admin.account_id, e.alias_name
            )
        );
        assert!(e.creation_date.is_some());
        let expected = if e.alias_name.starts_with("alias/a-") {
            &a
        } else {
            &b
        };
        assert_eq!(
            e.target_key_id, expected.key_id,
            "target_key_id is the bare key id"
        );
    }

    // Filtered by key, in pages of 2: 2, 2, 1; by id, ARN.
    for filter in [a.key_id.clone(), a.arn.clone()] {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut marker = None;
        loop {
            let page = kms
                .list_aliases(pb::ListAliasesRequest {
                    key_id: Some(filter.clone()),
                    limit: Some(2),
                    marker: marker.take(),
                })
                .await
                .unwrap()
                .into_inner();
            sizes.push(page.aliases.len());
            for e in page.aliases {
                assert_eq!(e.target_key_id, a.key_id);
                seen.push(e.alias_name);
            }
            if page.truncated {
                marker = Some(page.next_marker.expect("next_marker on a truncated page"));
            } else {
                assert_eq!(page.next_marker, None);
                break;
            }
        }
        assert_eq!(sizes, vec![2, 2, 1]);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, a_names, "each alias of a exactly once");
    }

    let only_b = kms
        .list_aliases(pb::ListAliasesRequest {
            key_id: Some(b.key_id.clone()),
            limit: None,
            marker: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_b.aliases.len(), 2);
    assert!(!only_b.truncated);
    let none = kms
        .list_aliases(pb::ListAliasesRequest {
            key_id: Some(unaliased.key_id.clone()),
            limit: None,
            marker: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.aliases.is_empty());

    // Unpaged in pages of 3: 3, 3, 1.
    let mut sizes = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_aliases(pb::ListAliasesRequest {
                key_id: None,
                limit: Some(3),
                marker: marker.take(),
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.aliases.len());
        match page.next_marker {
            Some(m) if page.truncated => marker = Some(m),
            _ => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);

    // Bad parameters.
    for limit in [0, 101] {
        let r = kms
            .list_aliases(pb::ListAliasesRequest {
                key_id: None,
                limit: Some(limit),
                marker: None,
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
    let r = kms
        .list_aliases(pb::ListAliasesRequest {
            key_id: None,
            limit: None,
            marker: Some("!!!".into()),
        })
        .await;
    assert_err(r, Code::InvalidArgument, "InvalidMarkerException");
    let r = kms
        .list_aliases(pb::ListAliasesRequest {
            key_id: Some(uuid::Uuid::new_v4().to_string()),
            limit: None,
            marker: None,
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
}

#[tokio::test]
async fn tag_untag_and_list() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key_with(
        &mut kms,
        pb::CreateKeyRequest {
            tags: vec![tag("created", "with-key")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        all_tags(&mut kms, &m.key_id).await,
        vec![("created".into(), "with-key".into())]
    );

    tag_resource(
        &mut kms,
        &m.key_id,
        vec![
            tag("env", "prod"),
            tag("team", "payments"),
            tag("empty", ""),
        ],
    )
    .await
    .unwrap();
    // Overwrite a value, by ARN.
    tag_resource(&mut kms, &m.arn, vec![tag("env", "staging")])
        .await
        .unwrap();
    assert_eq!(
        all_tags(&mut kms, &m.key_id).await,
        vec![
            ("created".into(), "with-key".into()),
            ("empty".into(), String::new()),
            ("env".into(), "staging".into()),
            ("team".into(), "payments".into()),
        ]
    );

    // Untag; removing a key that is not there is not an error (as in AWS).
    kms.untag_resource(pb::UntagResourceRequest {
        key_id: m.key_id.clone(),
        tag_keys: vec!["team".into(), "not-there".into()],
    })
    .await
    .unwrap();
    assert_eq!(
        all_tags(&mut kms, &m.key_id).await,
        vec![
            ("created".into(), "with-key".into()),
            ("empty".into(), String::new()),
            ("env".into(), "staging".into()),
        ]
    );

    // Tags are per key.
    let other = create_key(&mut kms).await;
    assert!(all_tags(&mut kms, &other.key_id).await.is_empty());

    // Tagging needs a key id or ARN; unknown keys are not found.
    assert_err(
        tag_resource(
            &mut kms,
            &uuid::Uuid::new_v4().to_string(),
            vec![tag("a", "b")],
        )
        .await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn tag_rules() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    // The limits themselves.
    tag_resource(
        &mut kms,
        &m.key_id,
        vec![tag(&"k".repeat(128), &"v".repeat(256))],
    )
    .await
    .unwrap();

    for bad in [
        tag("aws:reserved", "x"),
        tag("AWS:reserved", "x"),
        tag("aws:", "x"),
        tag(&"k".repeat(129), "x"),
        tag("ok-key", &"v".repeat(257)),
    ] {
        let label = format!("{}={}", bad.tag_key.len(), bad.tag_value.len());
        let r = tag_resource(&mut kms, &m.key_id, vec![tag("fine", "1"), bad]).await;
        let s = assert_err(r, Code::InvalidArgument, "TagException");
        assert!(!s.message().is_empty(), "{label}");
    }
    // An empty key is a bad tag, or a bad parameter: either way refused.
    let r = tag_resource(&mut kms, &m.key_id, vec![tag("", "x")]).await;
    let s = r.expect_err("an empty tag key was accepted");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        ["TagException", "ValidationException"].contains(&error_name(&s).as_str()),
        "{s:?}"
    );
    // A refused request adds none of its tags.
    assert_eq!(all_tags(&mut kms, &m.key_id).await.len(), 1);

    // `aws:` is reserved only as a prefix.
    tag_resource(
        &mut kms,
        &m.key_id,
        vec![tag("not-aws:x", "1"), tag("awsome", "2")],
    )
    .await
    .unwrap();

    // CreateKey applies the same rules.
    let r = kms
        .create_key(pb::CreateKeyRequest {
            tags: vec![tag("aws:x", "y")],
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "TagException");
    assert_eq!(all_key_ids(&mut kms).await.len(), 1, "no key was created");
}

#[tokio::test]
async fn tag_limit_and_paging() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    // 51 at once.
    let many: Vec<pb::Tag> = (0..51).map(|i| tag(&format!("t{i:02}"), "v")).collect();
    let r = tag_resource(&mut kms, &m.key_id, many.clone()).await;
    assert_err(r, Code::ResourceExhausted, "LimitExceededException");
    assert!(all_tags(&mut kms, &m.key_id).await.is_empty());

    // 50 is fine; overwriting one of them stays at 50; one more is refused.
    tag_resource(&mut kms, &m.key_id, many[..50].to_vec())
        .await
        .unwrap();
    tag_resource(&mut kms, &m.key_id, vec![tag("t00", "new")])
        .await
        .unwrap();
    let r = tag_resource(&mut kms, &m.key_id, vec![many[50].clone()]).await;
    assert_err(r, Code::ResourceExhausted, "LimitExceededException");
    let tags = all_tags(&mut kms, &m.key_id).await;
    assert_eq!(tags.len(), 50);
    assert_eq!(tags[0], ("t00".into(), "new".into()));

    // Paging: 50 tags in pages of 7.
    let mut seen = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = kms
            .list_resource_tags(pb::ListResourceTagsRequest {
                key_id: m.key_id.clone(),
                limit: Some(7),
                marker: marker.take(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.tags.len() <= 7);
        seen.extend(page.tags.into_iter().map(|t| t.tag_key));
        if page.truncated {
            marker = Some(page.next_marker.expect("next_marker"));
        } else {
            assert_eq!(page.next_marker, None);
            break;
        }
    }
    assert_eq!(pages, 8);
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 50, "every tag once: {seen:?}");
    assert_eq!(seen.len(), 50);

    // Untag one: then one more fits.
    kms.untag_resource(pb::UntagResourceRequest {
        key_id: m.key_id.clone(),
        tag_keys: vec!["t01".into()],
    })
    .await
    .unwrap();
    tag_resource(&mut kms, &m.key_id, vec![many[50].clone()])
        .await
        .unwrap();

    // Bad limits and markers.
    for limit in [0, 51] {
        let r = kms
            .list_resource_tags(pb::ListResourceTagsRequest {
                key_id: m.key_id.clone(),
                limit: Some(limit),
                marker: None,
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
    let r = kms
        .list_resource_tags(pb::ListResourceTagsRequest {
            key_id: m.key_id.clone(),
            limit: None,
            marker: Some("%%%".into()),
        })
        .await;
    assert_err(r, Code::InvalidArgument, "InvalidMarkerException");
}

#[tokio::test]
async fn tags_of_a_pending_key() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    tag_resource(&mut kms, &m.key_id, vec![tag("a", "1")])
        .await
        .unwrap();
    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    // AWS: TagResource and UntagResource on a key pending deletion are
    // KMSInvalidStateException; ListResourceTags still answers.
    assert_err(
        tag_resource(&mut kms, &m.key_id, vec![tag("b", "2")]).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    let r = kms
        .untag_resource(pb::UntagResourceRequest {
            key_id: m.key_id.clone(),
            tag_keys: vec!["a".into()],
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    assert_eq!(
        all_tags(&mut kms, &m.key_id).await,
        vec![("a".into(), "1".into())]
    );
    // Tags take a key id or ARN, not an alias.
    let k = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/tagged", &k.key_id)
        .await
        .unwrap();
    let r = tag_resource(&mut kms, "alias/tagged", vec![tag("x", "y")]).await;
    assert!(r.is_err(), "TagResource accepted an alias");
    assert!(all_tags(&mut kms, &k.key_id).await.is_empty());
}

/// `kms` may neither delete `alias` nor repoint it to `to`
/// (AccessDeniedException both ways), and the alias still names `names`.
async fn alias_is_guarded(
    kms: &mut KmsClient,
    admin: &mut KmsClient,
    alias: &str,
    to: &str,
    names: &str,
) {
    let r = kms
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: alias.into(),
        })
        .await;
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    let r = kms
        .update_alias(pb::UpdateAliasRequest {
            alias_name: alias.into(),
            target_key_id: to.into(),
        })
        .await;
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    assert_eq!(describe(admin, alias).await.unwrap().key_id, names);
}

/// DeleteAlias and UpdateAlias need permission on the key the alias names
/// (and, for UpdateAlias, on the new key too): a user of the account who
/// may only describe keys can neither delete nor repoint another's alias.
#[tokio::test]
async fn alias_changes_need_permission_on_the_aliased_key() {
    use crate::authz_util::{allow_identity, new_user, put_user_policy};
    let d = TestDaemon::start().await;
    let mut admin = d.admin_kms().await;
    let a = create_key(&mut admin).await;
    let b = create_key(&mut admin).await;
    create_alias(&mut admin, "alias/guarded", &a.key_id)
        .await
        .unwrap();
    let mallory = new_user(&d, &d.admin, "mallory").await;
    put_user_policy(
        &d,
        &d.admin,
        "mallory",
        "describe",
        &allow_identity("kms:DescribeKey"),
    )
    .await
    .unwrap();
    let mut m = d.kms_client(&mallory).await;
    alias_is_guarded(&mut m, &mut admin, "alias/guarded", &b.key_id, &a.key_id).await;

    // Allowed only on the key the alias would go to, not on the one it
    // leaves: still refused, both ways.
    put_user_policy(
        &d,
        &d.admin,
        "mallory",
        "target-only",
        &serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["kms:UpdateAlias", "kms:DeleteAlias"],
            "Resource": b.arn}]})
        .to_string(),
    )
    .await
    .unwrap();
    alias_is_guarded(&mut m, &mut admin, "alias/guarded", &b.key_id, &a.key_id).await;

    // Allowed on both keys, the same user may repoint and delete it.
    put_user_policy(
        &d,
        &d.admin,
        "mallory",
        "aliases",
        &allow_identity("kms:*Alias"),
    )
    .await
    .unwrap();
    m.update_alias(pb::UpdateAliasRequest {
        alias_name: "alias/guarded".into(),
        target_key_id: b.key_id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        describe(&mut admin, "alias/guarded").await.unwrap().key_id,
        b.key_id,
        "the alias was repointed"
    );
    m.delete_alias(pb::DeleteAliasRequest {
        alias_name: "alias/guarded".into(),
    })
    .await
    .unwrap();
    assert_err(
        describe(&mut admin, "alias/guarded").await,
        Code::NotFound,
        "NotFoundException",
    );
}
