//! `kmsctl`, command group by command group, against a real `kmsd dev`:
//! the JSON each command prints, and how it refuses (the AWS error name on
//! stderr; exit 1 for a failure, 2 for a usage error, 3 for an
//! authentication or authorization failure).
//!
//! One daemon per test; each test drives one or two command groups.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::{Value, json as j};

use crate::binary::{Kmsd, data_dir, json, kms_client, kmsctl, kmsctl_command, profile};

/// `kmsctl ARGS` as the `default` profile (the account's admin user).
fn run(dir: &Path, args: &[&str]) -> Output {
    kmsctl(dir, args, None)
}

/// `kmsctl ARGS`, which must succeed and print one JSON document.
fn ok(dir: &Path, args: &[&str]) -> Value {
    json(&run(dir, args))
}

/// `kmsctl ARGS` with `stdin`, which must succeed and print nothing.
fn quiet_with(dir: &Path, args: &[&str], stdin: Option<&[u8]>) {
    let out = kmsctl(dir, args, stdin);
    assert!(
        out.status.success(),
        "kmsctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "kmsctl {args:?} printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `kmsctl ARGS`, which must succeed and print nothing.
fn quiet(dir: &Path, args: &[&str]) {
    quiet_with(dir, args, None);
}

/// Asserts that `out` is a refusal: exit `code`, `error` named on stderr,
/// nothing on stdout.
#[track_caller]
fn refused(out: &Output, code: i32, error: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        stderr.contains(error),
        "expected {error} on stderr, got: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refusal prints nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s(v))
        .unwrap_or_else(|e| panic!("{v} is not base64: {e}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The caller's account id.
fn account(dir: &Path) -> String {
    s(&ok(dir, &["whoami"])["Account"]).to_owned()
}

/// Creates a user with no policy and an access key saved as profile `name`.
fn user_with_profile(dir: &Path, name: &str) -> String {
    let user = ok(dir, &["iam", "create-user", name]);
    ok(
        dir,
        &[
            "iam",
            "create-access-key",
            "--user",
            name,
            "--save-profile",
            name,
        ],
    );
    s(&user["User"]["Arn"]).to_owned()
}

fn create_key(dir: &Path) -> (String, String) {
    let m = ok(dir, &["key", "create"])["KeyMetadata"].clone();
    (s(&m["KeyId"]).to_owned(), s(&m["Arn"]).to_owned())
}

fn key_state(dir: &Path, key: &str) -> Value {
    ok(dir, &["key", "describe", key])["KeyMetadata"]["KeyState"].clone()
}

fn rfc3339(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s(v), &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{v} is not an RFC 3339 time: {e}"))
}

/// The names of a grant's operations, as a sorted list.
fn operations(grant: &Value) -> Vec<String> {
    let mut ops: Vec<String> = grant["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| s(o).to_owned())
        .collect();
    ops.sort();
    ops
}

#[test]
fn key_commands() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let account = account(&dir);

    let created = ok(&dir, &["key", "create", "--description", "invoices"]);
    let m = &created["KeyMetadata"];
    let key = s(&m["KeyId"]).to_owned();
    let arn = s(&m["Arn"]).to_owned();
    assert_eq!(arn, format!("arn:aws:kms:us-east-1:{account}:key/{key}"));
    assert_eq!(m["AWSAccountId"], account.as_str());
    assert_eq!(m["Description"], "invoices");
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["Enabled"], true);
    assert_eq!(m["KeyRotationEnabled"], false);
    assert_eq!(m["CurrentKeyMaterialVersion"], 1);
    assert_eq!(m["DeletionDate"], Value::Null);
    assert_eq!(m["PendingDeletionWindowInDays"], Value::Null);
    rfc3339(&m["CreationDate"]);

    // Describe by id and by ARN gives the same metadata.
    assert_eq!(ok(&dir, &["key", "describe", &key]), created);
    assert_eq!(ok(&dir, &["key", "describe", &arn]), created);

    let (other, other_arn) = create_key(&dir);
    let mut listed: Vec<Value> = ok(&dir, &["key", "list"])["Keys"]
        .as_array()
        .unwrap()
        .clone();
    listed.sort_by(|a, b| s(&a["KeyId"]).cmp(s(&b["KeyId"])));
    let mut expected = vec![
        j!({"KeyId": key, "KeyArn": arn}),
        j!({"KeyId": other, "KeyArn": other_arn}),
    ];
    expected.sort_by(|a, b| s(&a["KeyId"]).cmp(s(&b["KeyId"])));
    assert_eq!(listed, expected);

    quiet(&dir, &["key", "update-description", &key, "invoices 2026"]);
    assert_eq!(
        ok(&dir, &["key", "describe", &key])["KeyMetadata"]["Description"],
        "invoices 2026"
    );

    quiet(&dir, &["key", "disable", &key]);
    let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(
        (m["KeyState"].clone(), m["Enabled"].clone()),
        (j!("Disabled"), j!(false))
    );
    refused(&run(&dir, &["key", "rotate", &key]), 1, "DisabledException");
    refused(
        &run(&dir, &["data-key", "--key", &key]),
        1,
        "DisabledException",
    );
    quiet(&dir, &["key", "enable", &key]);
    let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(
        (m["KeyState"].clone(), m["Enabled"].clone()),
        (j!("Enabled"), j!(true))
    );

    // Rotation.
    let status = ok(&dir, &["key", "rotation-status", &key]);
    assert_eq!(status["KeyRotationEnabled"], false);
    assert_eq!(status["NextRotationDate"], Value::Null);
    quiet(
        &dir,
        &["key", "enable-rotation", &key, "--period-days", "180"],
    );
    let status = ok(&dir, &["key", "rotation-status", &key]);
    assert_eq!(status["KeyId"], arn.as_str());
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 180);
    // Due one period after it was enabled (a moment ago, on the real clock).
    let due = rfc3339(&status["NextRotationDate"]) - time::Duration::days(180);
    let since = time::OffsetDateTime::now_utc() - due;
    assert!(
        since > -time::Duration::SECOND && since < time::Duration::minutes(5),
        "next rotation {} is not 180 days after enabling",
        status["NextRotationDate"]
    );
    let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(m["KeyRotationEnabled"], true);
    assert_eq!(m["RotationPeriodInDays"], 180);
    refused(
        &run(
            &dir,
            &["key", "enable-rotation", &key, "--period-days", "10"],
        ),
        1,
        "ValidationException",
    );
    assert_eq!(
        ok(&dir, &["key", "rotation-status", &key])["RotationPeriodInDays"],
        180,
        "a refused change changes nothing"
    );

    assert_eq!(
        ok(&dir, &["key", "list-rotations", &key]),
        j!({"Rotations": []})
    );
    assert_eq!(
        ok(&dir, &["key", "rotate", &key]),
        j!({"KeyId": arn.as_str()})
    );
    let rotations = ok(&dir, &["key", "list-rotations", &key])["Rotations"].clone();
    let rotations = rotations.as_array().unwrap();
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert_eq!(rotations[0]["RotationType"], "ON_DEMAND");
    assert_eq!(rotations[0]["KeyMaterialVersion"], 2);
    assert!(
        s(&rotations[0]["KeyId"]).ends_with(key.as_str()),
        "{rotations:?}"
    );
    rfc3339(&rotations[0]["RotationDate"]);
    assert_eq!(
        ok(&dir, &["key", "describe", &key])["KeyMetadata"]["CurrentKeyMaterialVersion"],
        2
    );
    quiet(&dir, &["key", "disable-rotation", &key]);
    assert_eq!(
        ok(&dir, &["key", "rotation-status", &key])["KeyRotationEnabled"],
        false
    );

    // Tags.
    assert_eq!(ok(&dir, &["key", "list-tags", &key]), j!({"Tags": []}));
    quiet(&dir, &["key", "tag", &key, "team=billing", "env=prod"]);
    quiet(&dir, &["key", "tag", &key, "env=staging"]);
    let mut tags = ok(&dir, &["key", "list-tags", &key])["Tags"]
        .as_array()
        .unwrap()
        .clone();
    tags.sort_by(|a, b| s(&a["TagKey"]).cmp(s(&b["TagKey"])));
    assert_eq!(
        tags,
        vec![
            j!({"TagKey": "env", "TagValue": "staging"}),
            j!({"TagKey": "team", "TagValue": "billing"}),
        ],
        "a second tag with the same key overwrites the value"
    );
    quiet(&dir, &["key", "untag", &key, "env"]);
    assert_eq!(
        ok(&dir, &["key", "list-tags", &key]),
        j!({"Tags": [{"TagKey": "team", "TagValue": "billing"}]})
    );
    refused(
        &run(&dir, &["key", "tag", &key, "aws:owner=me"]),
        1,
        "TagException",
    );
    assert_eq!(
        run(&dir, &["key", "tag", &key, "no-equals-sign"])
            .status
            .code(),
        Some(2),
        "a tag that is not k=v is a usage error"
    );

    // Deletion: nobody can confirm on a pipe, so without --yes nothing happens.
    let unconfirmed = kmsctl(&dir, &["key", "schedule-deletion", &key], Some(b"y\n"));
    assert_eq!(
        unconfirmed.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&unconfirmed.stderr)
    );
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    assert!(unconfirmed.stdout.is_empty());
    let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["DeletionDate"], Value::Null);

    let scheduled = ok(
        &dir,
        &["key", "schedule-deletion", &key, "--days", "7", "--yes"],
    );
    assert_eq!(scheduled["KeyId"], arn.as_str());
    assert_eq!(scheduled["PendingWindowInDays"], 7);
    let deletion = rfc3339(&scheduled["DeletionDate"]);
    let created_at = rfc3339(&created["KeyMetadata"]["CreationDate"]);
    let window = deletion - created_at;
    assert!(
        window > time::Duration::days(6) && window < time::Duration::days(8),
        "deletion {deletion} is about 7 days after creation {created_at}"
    );
    let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(m["KeyState"], "PendingDeletion");
    assert_eq!(m["Enabled"], false);
    assert_eq!(m["DeletionDate"], scheduled["DeletionDate"]);
    assert_eq!(m["PendingDeletionWindowInDays"], 7);
    refused(
        &run(&dir, &["key", "enable", &key]),
        1,
        "KMSInvalidStateException",
    );
    assert_eq!(
        ok(&dir, &["key", "cancel-deletion", &key]),
        j!({"KeyId": arn.as_str()})
    );
    let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
    assert_eq!(
        m["KeyState"], "Disabled",
        "a cancelled deletion leaves the key Disabled"
    );
    assert_eq!(m["DeletionDate"], Value::Null);
    assert_eq!(m["PendingDeletionWindowInDays"], Value::Null);
    refused(
        &run(&dir, &["key", "cancel-deletion", &key]),
        1,
        "KMSInvalidStateException",
    );
    quiet(&dir, &["key", "enable", &key]);
    assert_eq!(key_state(&dir, &key), "Enabled");

    // Refusals.
    refused(
        &run(
            &dir,
            &["key", "describe", "00000000-0000-0000-0000-000000000000"],
        ),
        1,
        "NotFoundException",
    );
    // The daemon's message quotes the name it was given; a terminal
    // escape in it is printed escaped, not obeyed.
    let hostile = run(&dir, &["key", "describe", "alias/x\u{1b}[2Jy"]);
    refused(&hostile, 1, "NotFoundException");
    let stderr = String::from_utf8_lossy(&hostile.stderr);
    assert!(
        !stderr.contains('\u{1b}') && stderr.contains("x\\u{1b}[2Jy"),
        "{stderr:?}"
    );
    refused(
        &run(
            &dir,
            &["key", "schedule-deletion", &other, "--days", "31", "--yes"],
        ),
        1,
        "ValidationException",
    );
    assert_eq!(key_state(&dir, &other), "Enabled");
    user_with_profile(&dir, "nobody");
    refused(
        &run(&dir, &["--profile", "nobody", "key", "describe", &key]),
        3,
        "AccessDeniedException",
    );
    refused(
        &run(&dir, &["--profile", "nobody", "key", "disable", &key]),
        3,
        "AccessDeniedException",
    );
    assert_eq!(key_state(&dir, &key), "Enabled");
}

/// `kmsctl ARGS` with its stdin on a terminal at which `typed` was typed,
/// as a person at a shell runs it: a pseudo-terminal, whose other end this
/// test holds open until kmsctl has finished. A Ctrl-D follows the typing,
/// so that a kmsctl reading more than it should sees the end of its input
/// instead of waiting forever.
#[cfg(target_os = "linux")]
fn on_terminal(dir: &Path, args: &[&str], typed: &[u8]) -> Output {
    use std::io::Write;

    use rustix::fs::{Mode, OFlags, open};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

    let ours = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .expect("open a pseudo-terminal");
    grantpt(&ours).expect("grantpt");
    unlockpt(&ours).expect("unlockpt");
    let name = ptsname(&ours, Vec::new()).expect("ptsname");
    let theirs = open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open the terminal's other end");
    let mut ours = std::fs::File::from(ours);
    // Held by the terminal until kmsctl reads its line.
    ours.write_all(typed).expect("type the answer");
    ours.write_all(b"\x04").expect("type Ctrl-D");
    let out = kmsctl_command(dir, args)
        .stdin(Stdio::from(theirs))
        .output()
        .expect("spawn kmsctl");
    drop(ours);
    out
}

#[cfg(target_os = "linux")]
#[test]
fn schedule_deletion_asks_at_a_terminal() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let created = ok(&dir, &["key", "create", "--description", "ledger"]);
    let key = s(&created["KeyMetadata"]["KeyId"]).to_owned();
    let arn = s(&created["KeyMetadata"]["Arn"]).to_owned();
    quiet(&dir, &["alias", "create", "alias/ledger", &key]);
    let untouched = |what: &str| {
        let m = ok(&dir, &["key", "describe", &key])["KeyMetadata"].clone();
        assert_eq!(m["KeyState"], "Enabled", "{what}");
        assert_eq!(m["DeletionDate"], Value::Null, "{what}");
    };

    // An alias: refused before the question, naming the key to pass.
    let by_alias = on_terminal(
        &dir,
        &["key", "schedule-deletion", "alias/ledger", "--days", "7"],
        b"y\n",
    );
    let stderr = String::from_utf8_lossy(&by_alias.stderr);
    assert_eq!(by_alias.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&arn) && stderr.contains("alias"),
        "{stderr}"
    );
    assert!(!stderr.contains("[y/N]"), "asked anyway: {stderr}");
    assert!(by_alias.stdout.is_empty());
    // On a pipe too, the alias is what is wrong, not the missing --yes.
    let piped = run(&dir, &["key", "schedule-deletion", "alias/ledger"]);
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert_eq!(piped.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(&arn), "{stderr}");
    untouched("an alias changes nothing");

    // No: the key, its description, state and date are shown, nothing changes.
    let no = on_terminal(
        &dir,
        &["key", "schedule-deletion", &key, "--days", "7"],
        b"n\n",
    );
    let stderr = String::from_utf8_lossy(&no.stderr);
    assert_eq!(no.status.code(), Some(1), "stderr: {stderr}");
    for shown in [
        arn.as_str(),
        "Description: ledger",
        "State:       Enabled",
        "(7 days)",
        "Schedule the deletion? [y/N]",
        "not confirmed",
    ] {
        assert!(stderr.contains(shown), "{shown:?} not in: {stderr}");
    }
    assert!(no.stdout.is_empty());
    untouched("answering no changes nothing");

    // The key's ARN names the key itself: asked, not refused as an alias.
    let by_arn = on_terminal(&dir, &["key", "schedule-deletion", &arn], b"n\n");
    let stderr = String::from_utf8_lossy(&by_arn.stderr);
    assert_eq!(by_arn.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("[y/N]") && stderr.contains("not confirmed"),
        "{stderr}"
    );
    untouched("answering no by ARN changes nothing");

    // Yes: scheduled.
    let yes = on_terminal(
        &dir,
        &["key", "schedule-deletion", &key, "--days", "7"],
        b"y\n",
    );
    let scheduled = json(&yes);
    assert_eq!(scheduled["KeyId"], arn.as_str());
    assert_eq!(scheduled["PendingWindowInDays"], 7);
    assert_eq!(key_state(&dir, &key), "PendingDeletion");
}

#[test]
fn alias_and_policy_commands() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let account = account(&dir);
    let (a, a_arn) = create_key(&dir);
    let (b, _) = create_key(&dir);

    // Aliases.
    assert_eq!(ok(&dir, &["alias", "list"]), j!({"Aliases": []}));
    quiet(&dir, &["alias", "create", "alias/payments", &a]);
    let listed = ok(&dir, &["alias", "list"])["Aliases"].clone();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let alias = &listed[0];
    assert_eq!(alias["AliasName"], "alias/payments");
    assert_eq!(
        alias["AliasArn"],
        format!("arn:aws:kms:us-east-1:{account}:alias/payments")
    );
    assert_eq!(alias["TargetKeyId"], a.as_str());
    rfc3339(&alias["CreationDate"]);
    assert_eq!(
        ok(&dir, &["alias", "list", "--key", &a])["Aliases"],
        j!([alias])
    );
    assert_eq!(
        ok(&dir, &["alias", "list", "--key", &a_arn])["Aliases"],
        j!([alias]),
        "--key takes an ARN too"
    );
    assert_eq!(
        ok(&dir, &["alias", "list", "--key", &b]),
        j!({"Aliases": []})
    );
    assert_eq!(
        ok(&dir, &["key", "describe", "alias/payments"])["KeyMetadata"]["KeyId"],
        a.as_str()
    );

    quiet(&dir, &["alias", "update", "alias/payments", &b]);
    assert_eq!(
        ok(&dir, &["key", "describe", "alias/payments"])["KeyMetadata"]["KeyId"],
        b.as_str(),
        "the alias now names the other key"
    );
    assert_eq!(
        ok(
            &dir,
            &[
                "key",
                "describe",
                &format!("arn:aws:kms:us-east-1:{account}:alias/payments")
            ]
        )["KeyMetadata"]["KeyId"],
        b.as_str(),
        "and so does its ARN"
    );
    assert_eq!(
        ok(&dir, &["alias", "list", "--key", &a]),
        j!({"Aliases": []})
    );
    assert_eq!(
        ok(&dir, &["alias", "list", "--key", &b])["Aliases"][0]["AliasName"],
        "alias/payments"
    );

    refused(
        &run(&dir, &["alias", "create", "alias/payments", &a]),
        1,
        "AlreadyExistsException",
    );
    for bad in ["payments", "alias/aws/payments", "alias/with space"] {
        refused(
            &run(&dir, &["alias", "create", bad, &a]),
            1,
            "InvalidAliasNameException",
        );
    }
    refused(
        &run(&dir, &["alias", "update", "alias/missing", &a]),
        1,
        "NotFoundException",
    );
    assert_eq!(
        ok(&dir, &["alias", "list"])["Aliases"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    quiet(&dir, &["alias", "delete", "alias/payments"]);
    assert_eq!(ok(&dir, &["alias", "list"]), j!({"Aliases": []}));
    refused(
        &run(&dir, &["key", "describe", "alias/payments"]),
        1,
        "NotFoundException",
    );
    refused(
        &run(&dir, &["alias", "delete", "alias/payments"]),
        1,
        "NotFoundException",
    );
    assert_eq!(
        key_state(&dir, &b),
        "Enabled",
        "deleting an alias keeps its key"
    );

    // Policies.
    let default = ok(&dir, &["policy", "get", &a]);
    assert_eq!(default["Version"], "2012-10-17");
    let statements = default["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{default}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Action"], "kms:*");
    assert_eq!(
        statements[0]["Principal"]["AWS"],
        format!("arn:aws:iam::{account}:root")
    );
    assert_eq!(
        ok(&dir, &["policy", "list", &a]),
        j!({"PolicyNames": ["default"]})
    );

    // A reader the key policy does not name may not describe the key...
    let reader = user_with_profile(&dir, "reader");
    refused(
        &run(&dir, &["--profile", "reader", "key", "describe", &a]),
        3,
        "AccessDeniedException",
    );
    // ...until a policy put from a file names it.
    let mut with_reader = default.clone();
    with_reader["Statement"].as_array_mut().unwrap().push(j!({
        "Sid": "Reader",
        "Effect": "Allow",
        "Principal": {"AWS": reader},
        "Action": "kms:DescribeKey",
        "Resource": "*",
    }));
    let file = dir.join("policy.json");
    std::fs::write(&file, with_reader.to_string()).unwrap();
    quiet(&dir, &["policy", "put", &a, path(&file)]);
    let got = ok(&dir, &["policy", "get", &a]);
    assert_eq!(got["Statement"], with_reader["Statement"]);
    assert_eq!(
        ok(&dir, &["--profile", "reader", "key", "describe", &a])["KeyMetadata"]["KeyId"],
        a.as_str()
    );
    refused(
        &run(&dir, &["--profile", "reader", "key", "disable", &a]),
        3,
        "AccessDeniedException",
    );

    // From stdin: back to the account-only statement, under a new Sid.
    let mut renamed = default.clone();
    renamed["Statement"][0]["Sid"] = j!("Account");
    quiet_with(
        &dir,
        &["policy", "put", &a, "-"],
        Some(renamed.to_string().as_bytes()),
    );
    let got = ok(&dir, &["policy", "get", &a]);
    assert_eq!(got["Statement"], renamed["Statement"]);
    refused(
        &run(&dir, &["--profile", "reader", "key", "describe", &a]),
        3,
        "AccessDeniedException",
    );

    // Malformed documents are refused and change nothing.
    for bad in [
        "{not json".to_owned(),
        j!({"Version": "2012-10-17", "Statement": []}).to_string(),
    ] {
        let out = kmsctl(&dir, &["policy", "put", &a, "-"], Some(bad.as_bytes()));
        refused(&out, 1, "MalformedPolicyDocumentException");
    }
    // A policy that would lock the caller out is refused too.
    let lockout = j!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": reader}, "Action": "kms:*", "Resource": "*",
    }]});
    let out = kmsctl(
        &dir,
        &["policy", "put", &a, "-"],
        Some(lockout.to_string().as_bytes()),
    );
    refused(&out, 1, "MalformedPolicyDocumentException");
    assert_eq!(
        ok(&dir, &["policy", "get", &a])["Statement"],
        renamed["Statement"]
    );
    refused(
        &run(
            &dir,
            &["policy", "get", "00000000-0000-0000-0000-000000000000"],
        ),
        1,
        "NotFoundException",
    );
    refused(
        &run(
            &dir,
            &["policy", "list", "00000000-0000-0000-0000-000000000000"],
        ),
        1,
        "NotFoundException",
    );
    // As in AWS, the policy commands take a key id or ARN, not an alias.
    quiet(&dir, &["alias", "create", "alias/policy", &a]);
    refused(
        &run(&dir, &["policy", "get", "alias/policy"]),
        1,
        "ValidationException",
    );
    let missing = dir.join("missing.json");
    let out = run(&dir, &["policy", "put", &a, path(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
}

/// The crypto commands that print JSON: data keys and random bytes.
#[test]
fn data_key_and_random_commands() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let (key, arn) = create_key(&dir);
    quiet(&dir, &["alias", "create", "alias/data", &key]);

    let dk = ok(&dir, &["data-key", "--key", "alias/data"]);
    assert_eq!(dk["KeyId"], arn.as_str());
    assert_eq!(b64(&dk["Plaintext"]).len(), 32, "an AES-256 key");
    assert!(b64(&dk["CiphertextBlob"]).len() > 32);
    let with_context = ok(&dir, &["data-key", "--key", &key, "--context", "tenant=a"]);
    assert_eq!(b64(&with_context["Plaintext"]).len(), 32);
    assert_ne!(with_context["Plaintext"], dk["Plaintext"]);

    let wrapped = ok(&dir, &["data-key", "--key", &arn, "--without-plaintext"]);
    let fields: Vec<&String> = wrapped.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["CiphertextBlob", "KeyId"],
        "no Plaintext: {wrapped}"
    );
    assert_eq!(wrapped["KeyId"], arn.as_str());
    assert!(b64(&wrapped["CiphertextBlob"]).len() > 32);

    let r = ok(&dir, &["random", "--bytes", "16"]);
    assert_eq!(r.as_object().unwrap().len(), 1, "{r}");
    assert_eq!(b64(&r["Plaintext"]).len(), 16);
    assert_eq!(
        b64(&ok(&dir, &["random"])["Plaintext"]).len(),
        32,
        "32 by default"
    );
    assert_eq!(
        b64(&ok(&dir, &["random", "--bytes", "1024"])["Plaintext"]).len(),
        1024
    );

    for n in ["0", "1025"] {
        refused(
            &run(&dir, &["random", "--bytes", n]),
            1,
            "ValidationException",
        );
    }
    assert_eq!(
        run(&dir, &["random", "--bytes", "many"]).status.code(),
        Some(2)
    );
    refused(
        &run(&dir, &["data-key", "--key", "alias/missing"]),
        1,
        "NotFoundException",
    );
    quiet(&dir, &["key", "disable", &key]);
    refused(
        &run(&dir, &["data-key", "--key", &key]),
        1,
        "DisabledException",
    );
    refused(
        &run(&dir, &["data-key", "--key", &key, "--without-plaintext"]),
        1,
        "DisabledException",
    );
    user_with_profile(&dir, "nobody");
    refused(
        &run(&dir, &["--profile", "nobody", "data-key", "--key", &arn]),
        3,
        "AccessDeniedException",
    );
}

/// The crypto commands that read and write raw bytes.
#[test]
fn blob_commands() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let (a, _) = create_key(&dir);
    let (b, _) = create_key(&dir);
    quiet(&dir, &["alias", "create", "alias/first", &a]);
    let secret = b"the launch codes are 0000";
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, secret).unwrap();
    let (blob, back) = (dir.join("blob.bin"), dir.join("back.txt"));

    quiet(
        &dir,
        &[
            "encrypt-blob",
            "--key",
            "alias/first",
            "--context",
            "purpose=test",
            "--context",
            "tenant=a",
            "--in",
            path(&plain),
            "--out",
            path(&blob),
        ],
    );
    let ciphertext = std::fs::read(&blob).unwrap();
    assert!(ciphertext.len() > secret.len());
    assert!(!ciphertext.windows(secret.len()).any(|w| w == secret));
    let decrypt_to_back = || {
        quiet(
            &dir,
            &[
                "decrypt-blob",
                "--in",
                path(&blob),
                "--out",
                path(&back),
                "--context",
                "tenant=a",
                "--context",
                "purpose=test",
            ],
        )
    };
    decrypt_to_back();
    assert_eq!(std::fs::read(&back).unwrap(), secret);
    // Over an existing, world-readable file the plaintext still lands in a
    // file only its owner can read.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&back, b"old").unwrap();
        std::fs::set_permissions(&back, std::fs::Permissions::from_mode(0o644)).unwrap();
        decrypt_to_back();
        assert_eq!(std::fs::read(&back).unwrap(), secret);
        let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "plaintext output has mode {mode:o}");
    }
    for wrong in [
        vec!["--context", "tenant=b", "--context", "purpose=test"],
        vec!["--context", "tenant=a"],
        vec![],
    ] {
        let mut args = vec!["decrypt-blob", "--in", path(&blob)];
        args.extend(wrong);
        refused(&run(&dir, &args), 1, "InvalidCiphertextException");
    }
    // stdin to stdout, the defaults.
    let piped = kmsctl(&dir, &["encrypt-blob", "--key", &b], Some(secret));
    assert!(piped.status.success());
    let out = kmsctl(&dir, &["decrypt-blob"], Some(&piped.stdout));
    assert!(out.status.success());
    assert_eq!(out.stdout, secret);

    // Re-encrypt under the second key, with a new context.
    let moved = dir.join("moved.bin");
    quiet(
        &dir,
        &[
            "re-encrypt-blob",
            "--key",
            &b,
            "--source-key",
            "alias/first",
            "--source-context",
            "purpose=test",
            "--source-context",
            "tenant=a",
            "--context",
            "moved=yes",
            "--in",
            path(&blob),
            "--out",
            path(&moved),
        ],
    );
    let out = run(
        &dir,
        &[
            "decrypt-blob",
            "--in",
            path(&moved),
            "--context",
            "moved=yes",
        ],
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, secret);
    refused(
        &run(
            &dir,
            &[
                "decrypt-blob",
                "--in",
                path(&moved),
                "--context",
                "purpose=test",
                "--context",
                "tenant=a",
            ],
        ),
        1,
        "InvalidCiphertextException",
    );
    // It is under the second key: disabling that key stops its decryption.
    quiet(&dir, &["key", "disable", &b]);
    refused(
        &run(
            &dir,
            &[
                "decrypt-blob",
                "--in",
                path(&moved),
                "--context",
                "moved=yes",
            ],
        ),
        1,
        "DisabledException",
    );
    let original = run(
        &dir,
        &[
            "decrypt-blob",
            "--in",
            path(&blob),
            "--context",
            "purpose=test",
            "--context",
            "tenant=a",
        ],
    );
    assert!(
        original.status.success(),
        "the original still decrypts under the first key"
    );
    assert_eq!(original.stdout, secret, "and to the same plaintext");
    quiet(&dir, &["key", "enable", &b]);
    refused(
        &run(
            &dir,
            &[
                "re-encrypt-blob",
                "--key",
                &a,
                "--source-key",
                &a,
                "--source-context",
                "moved=yes",
                "--in",
                path(&moved),
            ],
        ),
        1,
        "IncorrectKeyException",
    );

    // A data key's wrapped form decrypts to its plaintext.
    let dk = ok(&dir, &["data-key", "--key", &a, "--context", "k=v"]);
    let wrapped = dir.join("dk.bin");
    std::fs::write(&wrapped, b64(&dk["CiphertextBlob"])).unwrap();
    let out = run(
        &dir,
        &["decrypt-blob", "--in", path(&wrapped), "--context", "k=v"],
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, b64(&dk["Plaintext"]));

    // Random bytes, raw.
    let random = dir.join("random.bin");
    quiet(&dir, &["random", "--bytes", "16", "--out", path(&random)]);
    assert_eq!(std::fs::read(&random).unwrap().len(), 16);
    let out = run(&dir, &["random", "--bytes", "16", "--out", "-"]);
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 16);
    let table = run(&dir, &["-o", "table", "random", "--bytes", "16"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("Plaintext"));
    // A table, not JSON: a `Plaintext <base64>` row.
    assert!(serde_json::from_slice::<serde_json::Value>(&table.stdout).is_err());
    assert!(
        String::from_utf8_lossy(&table.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some("Plaintext")
                && l.split_whitespace().count() == 2)
    );

    // Refusals.
    let mut tampered = ciphertext.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    refused(
        &kmsctl(
            &dir,
            &[
                "decrypt-blob",
                "--context",
                "purpose=test",
                "--context",
                "tenant=a",
            ],
            Some(&tampered),
        ),
        1,
        "InvalidCiphertextException",
    );
    quiet(&dir, &["key", "disable", &a]);
    refused(
        &kmsctl(&dir, &["encrypt-blob", "--key", &a], Some(secret)),
        1,
        "DisabledException",
    );
    refused(
        &kmsctl(
            &dir,
            &["encrypt-blob", "--key", "alias/missing"],
            Some(secret),
        ),
        1,
        "NotFoundException",
    );
    refused(
        &kmsctl(&dir, &["encrypt-blob", "--key", &b], Some(&[0u8; 4097])),
        1,
        "ValidationException",
    );
}

#[test]
fn grant_lists_walk_every_page() {
    // More grants than one page holds (ListGrants and ListRetirableGrants
    // return at most 100): kmsctl must print them all, not the first page.
    const GRANTS: usize = 103;
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let account = account(&dir);
    let (key, _) = create_key(&dir);
    let retiree = format!("arn:aws:iam::{account}:user/retiree");
    let p = profile(&dir, "default");
    let made: BTreeSet<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut kms = kms_client(&p.endpoint, &p).await;
        let mut made = BTreeSet::new();
        for _ in 0..GRANTS {
            let g = kms
                .create_grant(kmsd::pb::CreateGrantRequest {
                    key_id: key.clone(),
                    grantee_principal: format!("arn:aws:iam::{account}:user/svc"),
                    retiring_principal: Some(retiree.clone()),
                    operations: vec![kmsd::pb::GrantOperation::Encrypt as i32],
                    ..Default::default()
                })
                .await
                .expect("CreateGrant");
            made.insert(g.into_inner().grant_id);
        }
        made
    });
    assert_eq!(made.len(), GRANTS);
    let ids = |v: Value| -> BTreeSet<String> {
        v["Grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| s(&g["GrantId"]).to_owned())
            .collect()
    };
    for args in [
        ["grant", "list", key.as_str()],
        ["grant", "list-retirable", retiree.as_str()],
    ] {
        let listed = ids(ok(&dir, &args));
        assert_eq!(listed.len(), GRANTS, "kmsctl {args:?}");
        assert_eq!(listed, made, "kmsctl {args:?}");
    }
}

#[test]
fn grant_commands() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let account = account(&dir);
    let (key, arn) = create_key(&dir);
    let grantee = user_with_profile(&dir, "svc");
    let retiree = user_with_profile(&dir, "retiree");
    let admin = format!("arn:aws:iam::{account}:user/admin");

    assert_eq!(ok(&dir, &["grant", "list", &key]), j!({"Grants": []}));
    let create_args = [
        "grant",
        "create",
        &key,
        "--grantee",
        &grantee,
        "--operation",
        "Encrypt",
        "--operation",
        "Decrypt",
        "--retiring-principal",
        &retiree,
        "--context-subset",
        "tenant=a",
        "--name",
        "orders",
    ];
    let g = ok(&dir, &create_args);
    let fields: Vec<&String> = g.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["GrantId", "GrantToken"]);
    let (grant_id, token) = (s(&g["GrantId"]).to_owned(), s(&g["GrantToken"]).to_owned());
    assert!(!grant_id.is_empty() && !token.is_empty());
    assert_eq!(
        ok(&dir, &create_args)["GrantId"],
        grant_id.as_str(),
        "the same name and parameters give the same grant"
    );

    let listed = ok(&dir, &["grant", "list", &key])["Grants"].clone();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let grant = &listed[0];
    assert_eq!(grant["GrantId"], grant_id.as_str());
    assert_eq!(grant["KeyId"], arn.as_str());
    assert_eq!(grant["Name"], "orders");
    assert_eq!(grant["GranteePrincipal"], grantee.as_str());
    assert_eq!(grant["RetiringPrincipal"], retiree.as_str());
    assert_eq!(
        grant["IssuingAccount"],
        format!("arn:aws:iam::{account}:root")
    );
    assert_eq!(
        grant["Constraints"],
        j!({"EncryptionContextSubset": {"tenant": "a"}})
    );
    rfc3339(&grant["CreationDate"]);
    // Spelling aside (see `grant_operations_are_spelled_as_aws_spells_them`).
    let ops: Vec<String> = operations(grant)
        .iter()
        .map(|o| o.to_lowercase().replace('_', ""))
        .collect();
    assert_eq!(ops, ["decrypt", "encrypt"]);
    assert_eq!(
        ok(&dir, &["grant", "list-retirable", &retiree])["Grants"],
        j!([grant])
    );
    assert_eq!(
        ok(&dir, &["grant", "list-retirable", &admin]),
        j!({"Grants": []})
    );

    // Only the retiring principal may retire it.
    refused(
        &run(&dir, &["grant", "retire", "--token", &token]),
        3,
        "AccessDeniedException",
    );
    refused(
        &run(
            &dir,
            &["--profile", "svc", "grant", "retire", "--token", &token],
        ),
        3,
        "AccessDeniedException",
    );
    quiet(
        &dir,
        &["--profile", "retiree", "grant", "retire", "--token", &token],
    );
    assert_eq!(ok(&dir, &["grant", "list", &key]), j!({"Grants": []}));
    assert_eq!(
        ok(&dir, &["grant", "list-retirable", &retiree]),
        j!({"Grants": []})
    );

    // Retire by key ARN and grant id.
    let g = ok(
        &dir,
        &[
            "grant",
            "create",
            &key,
            "--grantee",
            &grantee,
            "--operation",
            "GenerateDataKey",
            "--retiring-principal",
            &retiree,
            "--context-equals",
            "tenant=b",
        ],
    );
    let id = s(&g["GrantId"]).to_owned();
    let listed = ok(&dir, &["grant", "list", &key]);
    assert_eq!(listed["Grants"][0]["GrantId"], id.as_str());
    assert_eq!(
        listed["Grants"][0]["Constraints"],
        j!({"EncryptionContextEquals": {"tenant": "b"}})
    );
    quiet(
        &dir,
        &[
            "--profile",
            "retiree",
            "grant",
            "retire",
            "--key",
            &arn,
            "--grant-id",
            &id,
        ],
    );
    assert_eq!(ok(&dir, &["grant", "list", &key]), j!({"Grants": []}));

    // A grantee with RetireGrant among its operations may retire its own grant.
    let g = ok(
        &dir,
        &[
            "grant",
            "create",
            &key,
            "--grantee",
            &grantee,
            "--operation",
            "Encrypt",
            "--operation",
            "RetireGrant",
        ],
    );
    quiet(
        &dir,
        &[
            "--profile",
            "svc",
            "grant",
            "retire",
            "--token",
            s(&g["GrantToken"]),
        ],
    );
    assert_eq!(ok(&dir, &["grant", "list", &key]), j!({"Grants": []}));

    // Revoke: the key's administrator.
    let keep = ok(
        &dir,
        &[
            "grant",
            "create",
            &key,
            "--grantee",
            &grantee,
            "--operation",
            "Decrypt",
        ],
    );
    let gone = ok(
        &dir,
        &[
            "grant",
            "create",
            &key,
            "--grantee",
            &grantee,
            "--operation",
            "Encrypt",
        ],
    );
    let gone_id = s(&gone["GrantId"]).to_owned();
    refused(
        &run(
            &dir,
            &["--profile", "svc", "grant", "revoke", &key, &gone_id],
        ),
        3,
        "AccessDeniedException",
    );
    quiet(&dir, &["grant", "revoke", &key, &gone_id]);
    let listed = ok(&dir, &["grant", "list", &key]);
    let ids: Vec<&Value> = listed["Grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["GrantId"])
        .collect();
    assert_eq!(ids, [&keep["GrantId"]]);
    refused(
        &run(&dir, &["grant", "revoke", &key, &gone_id]),
        1,
        "NotFoundException",
    );

    // Refusals.
    refused(
        &run(&dir, &["grant", "retire", "--token", "not-a-token"]),
        1,
        "InvalidGrantTokenException",
    );
    refused(&run(&dir, &["grant", "retire"]), 1, "ValidationException");
    refused(
        &run(
            &dir,
            &[
                "grant",
                "create",
                &key,
                "--grantee",
                "bob",
                "--operation",
                "Encrypt",
            ],
        ),
        1,
        "ValidationException",
    );
    for (missing, error) in [
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "NotFoundException"),
        // As in AWS, a grant names the key itself, never an alias.
        ("alias/missing", "ValidationException"),
    ] {
        refused(
            &run(
                &dir,
                &[
                    "grant",
                    "create",
                    missing,
                    "--grantee",
                    &grantee,
                    "--operation",
                    "Encrypt",
                ],
            ),
            1,
            error,
        );
    }
    assert_eq!(
        run(&dir, &["grant", "create", &key, "--grantee", &grantee])
            .status
            .code(),
        Some(2),
        "--operation is required"
    );
    assert_eq!(
        ok(&dir, &["grant", "list", &key])["Grants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `grant list` should print the operations as AWS (and `grant create
/// --operation`) spells them, so that its output can be fed back.
#[test]
fn grant_operations_are_spelled_as_aws_spells_them() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let (key, _) = create_key(&dir);
    let grantee = format!("arn:aws:iam::{}:user/admin", account(&dir));
    let all = [
        "CreateGrant",
        "Decrypt",
        "DescribeKey",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        "RetireGrant",
    ];
    let mut args = vec!["grant", "create", &key, "--grantee", &grantee];
    for op in all {
        args.extend(["--operation", op]);
    }
    ok(&dir, &args);
    let listed = ok(&dir, &["grant", "list", &key]);
    assert_eq!(operations(&listed["Grants"][0]), all);
}

#[test]
fn iam_commands() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let account = account(&dir);
    let policy = j!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}
    ]});
    let policy_file = dir.join("policy.json");
    std::fs::write(&policy_file, policy.to_string()).unwrap();
    let policy_path = path(&policy_file);

    // Users.
    let user = ok(&dir, &["iam", "create-user", "carol", "--path", "/eng/"])["User"].clone();
    assert_eq!(user["UserName"], "carol");
    assert_eq!(user["Path"], "/eng/");
    assert_eq!(
        user["Arn"],
        format!("arn:aws:iam::{account}:user/eng/carol")
    );
    assert!(s(&user["UserId"]).starts_with("AIDA"), "{user}");
    rfc3339(&user["CreateDate"]);
    let users = ok(&dir, &["iam", "list-users"]);
    let names: Vec<&str> = users["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| s(&u["UserName"]))
        .collect();
    assert!(
        names.contains(&"admin") && names.contains(&"carol"),
        "{names:?}"
    );
    assert!(users["Users"].as_array().unwrap().contains(&user));
    refused(
        &run(&dir, &["iam", "create-user", "carol"]),
        1,
        "AlreadyExistsException",
    );
    refused(
        &run(&dir, &["iam", "create-user", "bad name"]),
        1,
        "ValidationException",
    );

    // Access keys.
    let k = ok(&dir, &["iam", "create-access-key", "--user", "carol"])["AccessKey"].clone();
    assert_eq!(k["UserName"], "carol");
    assert_eq!(k["SavedAsProfile"], Value::Null);
    let (id, secret) = (
        s(&k["AccessKeyId"]).to_owned(),
        s(&k["SecretAccessKey"]).to_owned(),
    );
    assert!(id.starts_with("AKIA"), "{id}");
    assert!(secret.len() >= 20);
    let listed =
        ok(&dir, &["iam", "list-access-keys", "--user", "carol"])["AccessKeyMetadata"].clone();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["AccessKeyId"], id.as_str());
    assert_eq!(listed[0]["UserName"], "carol");
    assert_eq!(listed[0]["Status"], "Active");
    assert!(
        listed[0].get("SecretAccessKey").is_none(),
        "the secret is shown once"
    );
    let mine = ok(&dir, &["iam", "list-access-keys"])["AccessKeyMetadata"].clone();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["UserName"], "admin", "without --user: the caller's");
    // The new key authenticates as carol.
    let as_carol = |args: &[&str]| {
        let mut all = vec![
            "--access-key-id",
            id.as_str(),
            "--secret-access-key",
            secret.as_str(),
        ];
        all.extend_from_slice(args);
        run(&dir, &all)
    };
    assert_eq!(json(&as_carol(&["whoami"]))["Arn"], user["Arn"]);
    refused(
        &as_carol(&["iam", "list-users"]),
        3,
        "AccessDeniedException",
    );
    refused(
        &as_carol(&["iam", "create-user", "mallory"]),
        3,
        "AccessDeniedException",
    );
    quiet(&dir, &["iam", "delete-access-key", &id, "--user", "carol"]);
    assert_eq!(
        ok(&dir, &["iam", "list-access-keys", "--user", "carol"]),
        j!({"AccessKeyMetadata": []})
    );
    refused(&as_carol(&["whoami"]), 3, "UnrecognizedClientException");
    refused(
        &run(&dir, &["iam", "delete-access-key", &id, "--user", "carol"]),
        1,
        "NotFoundException",
    );

    // Groups.
    let group = ok(&dir, &["iam", "create-group", "devs"])["Group"].clone();
    assert_eq!(group["GroupName"], "devs");
    assert_eq!(group["Path"], "/");
    assert_eq!(group["Arn"], format!("arn:aws:iam::{account}:group/devs"));
    assert!(s(&group["GroupId"]).starts_with("AGPA"), "{group}");
    assert_eq!(
        ok(&dir, &["iam", "list-groups-for-user", "carol"]),
        j!({"Groups": []})
    );
    quiet(&dir, &["iam", "add-user-to-group", "devs", "carol"]);
    assert_eq!(
        ok(&dir, &["iam", "list-groups-for-user", "carol"]),
        j!({"Groups": [group]})
    );
    refused(
        &run(&dir, &["iam", "add-user-to-group", "devs", "nobody-here"]),
        1,
        "NotFoundException",
    );
    quiet(&dir, &["iam", "remove-user-from-group", "devs", "carol"]);
    assert_eq!(
        ok(&dir, &["iam", "list-groups-for-user", "carol"]),
        j!({"Groups": []})
    );

    // User policies, from a file.
    quiet(
        &dir,
        &["iam", "put-user-policy", "carol", "encrypt", policy_path],
    );
    assert_eq!(
        ok(&dir, &["iam", "get-user-policy", "carol", "encrypt"]),
        j!({"UserName": "carol", "PolicyName": "encrypt", "PolicyDocument": policy})
    );
    quiet(&dir, &["iam", "delete-user-policy", "carol", "encrypt"]);
    refused(
        &run(&dir, &["iam", "get-user-policy", "carol", "encrypt"]),
        1,
        "NotFoundException",
    );
    refused(
        &run(&dir, &["iam", "delete-user-policy", "carol", "encrypt"]),
        1,
        "NotFoundException",
    );
    refused(
        &kmsctl(
            &dir,
            &["iam", "put-user-policy", "carol", "broken", "-"],
            Some(b"{not json"),
        ),
        1,
        "MalformedPolicyDocumentException",
    );

    // Group policies, from stdin.
    quiet_with(
        &dir,
        &["iam", "put-group-policy", "devs", "encrypt", "-"],
        Some(policy.to_string().as_bytes()),
    );
    assert_eq!(
        ok(&dir, &["iam", "get-group-policy", "devs", "encrypt"]),
        j!({"GroupName": "devs", "PolicyName": "encrypt", "PolicyDocument": policy})
    );
    quiet(&dir, &["iam", "delete-group-policy", "devs", "encrypt"]);
    refused(
        &run(&dir, &["iam", "get-group-policy", "devs", "encrypt"]),
        1,
        "NotFoundException",
    );
    quiet(&dir, &["iam", "delete-group", "devs"]);
    refused(
        &run(&dir, &["iam", "add-user-to-group", "devs", "carol"]),
        1,
        "NotFoundException",
    );
    refused(
        &run(&dir, &["iam", "delete-group", "devs"]),
        1,
        "NotFoundException",
    );

    // Roles.
    let trust = j!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": user["Arn"]},
        "Action": "sts:AssumeRole",
    }]});
    let trust_file = dir.join("trust.json");
    std::fs::write(&trust_file, trust.to_string()).unwrap();
    let role = ok(
        &dir,
        &[
            "iam",
            "create-role",
            "deployer",
            "--trust-policy",
            path(&trust_file),
        ],
    )["Role"]
        .clone();
    assert_eq!(role["RoleName"], "deployer");
    assert_eq!(role["Arn"], format!("arn:aws:iam::{account}:role/deployer"));
    assert!(s(&role["RoleId"]).starts_with("AROA"), "{role}");
    let got = ok(&dir, &["iam", "get-role", "deployer"])["Role"].clone();
    assert_eq!(got["RoleName"], "deployer");
    assert_eq!(got["Arn"], role["Arn"]);
    assert_eq!(got["RoleId"], role["RoleId"]);
    assert_eq!(got["Path"], "/");
    assert_eq!(got["MaxSessionDuration"], 3600);
    assert_eq!(got["AssumeRolePolicyDocument"], trust);
    rfc3339(&got["CreateDate"]);
    refused(
        &run(
            &dir,
            &[
                "iam",
                "create-role",
                "deployer",
                "--trust-policy",
                path(&trust_file),
            ],
        ),
        1,
        "AlreadyExistsException",
    );
    quiet(
        &dir,
        &["iam", "put-role-policy", "deployer", "encrypt", policy_path],
    );
    assert_eq!(
        ok(&dir, &["iam", "get-role-policy", "deployer", "encrypt"]),
        j!({"RoleName": "deployer", "PolicyName": "encrypt", "PolicyDocument": policy})
    );
    quiet(&dir, &["iam", "delete-role-policy", "deployer", "encrypt"]);
    refused(
        &run(&dir, &["iam", "get-role-policy", "deployer", "encrypt"]),
        1,
        "NotFoundException",
    );
    quiet(&dir, &["iam", "delete-role", "deployer"]);
    refused(
        &run(&dir, &["iam", "get-role", "deployer"]),
        1,
        "NotFoundException",
    );

    // Deleting a user takes its access keys and memberships with it (for
    // its inline policies, see `deleting_a_user_deletes_its_inline_policies`).
    ok(&dir, &["iam", "create-group", "ops"]);
    quiet(&dir, &["iam", "add-user-to-group", "ops", "carol"]);
    let k = ok(&dir, &["iam", "create-access-key", "--user", "carol"])["AccessKey"].clone();
    let old_key = [
        "--access-key-id",
        s(&k["AccessKeyId"]),
        "--secret-access-key",
        s(&k["SecretAccessKey"]),
        "whoami",
    ];
    assert_eq!(ok(&dir, &old_key)["Arn"], user["Arn"]);
    quiet(&dir, &["iam", "delete-user", "carol"]);
    let names: Vec<Value> = ok(&dir, &["iam", "list-users"])["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["UserName"].clone())
        .collect();
    assert!(!names.contains(&j!("carol")), "{names:?}");
    refused(&run(&dir, &old_key), 3, "UnrecognizedClientException");
    refused(
        &run(&dir, &["iam", "list-groups-for-user", "carol"]),
        1,
        "NotFoundException",
    );
    refused(
        &run(&dir, &["iam", "list-access-keys", "--user", "carol"]),
        1,
        "NotFoundException",
    );
    refused(
        &run(&dir, &["iam", "delete-user", "carol"]),
        1,
        "NotFoundException",
    );
    // A new user of the same name starts afresh.
    ok(&dir, &["iam", "create-user", "carol"]);
    assert_eq!(
        ok(&dir, &["iam", "list-groups-for-user", "carol"]),
        j!({"Groups": []})
    );
    assert_eq!(
        ok(&dir, &["iam", "list-access-keys", "--user", "carol"]),
        j!({"AccessKeyMetadata": []})
    );
    refused(&run(&dir, &old_key), 3, "UnrecognizedClientException");
    assert_eq!(
        run(&dir, &["iam", "create-role", "r"]).status.code(),
        Some(2),
        "--trust-policy is required"
    );
}

/// `iam delete-user` says the user's inline policies go with it, as the
/// group's and the role's do with `delete-group` and `delete-role`.
#[test]
fn deleting_a_user_deletes_its_inline_policies() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let policy = j!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    ]});
    ok(&dir, &["iam", "create-user", "dave"]);
    quiet_with(
        &dir,
        &["iam", "put-user-policy", "dave", "everything", "-"],
        Some(policy.to_string().as_bytes()),
    );
    quiet(&dir, &["iam", "delete-user", "dave"]);
    refused(
        &run(&dir, &["iam", "get-user-policy", "dave", "everything"]),
        1,
        "NotFoundException",
    );
    // A new user of the same name must not inherit the old one's permissions.
    ok(&dir, &["iam", "create-user", "dave"]);
    refused(
        &run(&dir, &["iam", "get-user-policy", "dave", "everything"]),
        1,
        "NotFoundException",
    );
    ok(
        &dir,
        &[
            "iam",
            "create-access-key",
            "--user",
            "dave",
            "--save-profile",
            "dave",
        ],
    );
    refused(
        &run(&dir, &["--profile", "dave", "key", "create"]),
        3,
        "AccessDeniedException",
    );
}

/// A new secret is shown once: when it cannot be saved as a profile it is
/// still printed, not claimed as saved, and the failure is said (exit 1).
/// A name that would break the credentials file is refused before any call.
#[test]
fn a_profile_that_cannot_be_saved_is_not_claimed() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    ok(&dir, &["iam", "create-user", "erin"]);
    let admin = kmsd::profile::load(&dir.join("credentials"), "default").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .args(["--endpoint", &admin.endpoint, "--access-key-id"])
        .arg(&admin.access_key_id)
        .arg("--secret-access-key")
        .arg(admin.secret_access_key.as_str())
        // Nobody can create a file in /proc, not even root.
        .args(["--credentials", "/proc/kmsd-no-such-dir/credentials"])
        .args(["iam", "create-access-key", "--user", "erin"])
        .args(["--save-profile", "erin"])
        .env_remove("KMS_PROFILE")
        .env_remove("KMS_CREDENTIALS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("printed but not saved as profile [erin]"),
        "{stderr}"
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the key is printed");
    assert_eq!(printed["AccessKey"]["SavedAsProfile"], Value::Null);
    assert!(s(&printed["AccessKey"]["AccessKeyId"]).starts_with("AKIA"));
    assert!(!s(&printed["AccessKey"]["SecretAccessKey"]).is_empty());

    let before = std::fs::read(dir.join("credentials")).unwrap();
    for bad in ["bad]name", "a\nb", "", "x y"] {
        let out = run(
            &dir,
            &[
                "iam",
                "create-access-key",
                "--user",
                "erin",
                "--save-profile",
                bad,
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("cannot be a profile name"), "{stderr}");
    }
    assert_eq!(std::fs::read(dir.join("credentials")).unwrap(), before);
    let keys = ok(&dir, &["iam", "list-access-keys", "--user", "erin"]);
    assert_eq!(
        keys["AccessKeyMetadata"].as_array().unwrap().len(),
        1,
        "no call was made for a refused name"
    );
}

/// `kmsctl` with `KMS_OUTPUT` set (and nothing else from the environment).
fn kmsctl_with_output_env(dir: &Path, format: &str, args: &[&str]) -> Output {
    kmsctl_command(dir, args)
        .env("KMS_OUTPUT", format)
        .stdin(Stdio::null())
        .output()
        .expect("spawn kmsctl")
}

fn text(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kmsctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn audit_commands_and_output_formats() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let account = account(&dir);
    let (key, arn) = create_key(&dir);
    let (other, _) = create_key(&dir);
    let admin = format!("arn:aws:iam::{account}:user/admin");

    // Audit.
    let found = ok(&dir, &["audit", "lookup", "--operation", "CreateKey"]);
    assert_eq!(found["Truncated"], false);
    let events = found["Events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{found}");
    assert!(events.iter().all(|e| e["eventName"] == "CreateKey"));
    let event = events
        .iter()
        .find(|e| e["resources"][0]["ARN"] == arn.as_str())
        .unwrap_or_else(|| panic!("no CreateKey event for {arn}: {found}"));
    assert_eq!(event["outcome"], "allowed");
    assert_eq!(event["eventSource"], "kms.amazonaws.com");
    assert_eq!(event["recipientAccountId"], account.as_str());
    assert_eq!(event["userIdentity"]["arn"], admin.as_str());
    assert_eq!(event["userIdentity"]["type"], "IAMUser");
    rfc3339(&event["eventTime"]);
    let by_key = ok(
        &dir,
        &["audit", "lookup", "--operation", "CreateKey", "--key", &key],
    );
    assert_eq!(by_key["Events"], j!([event]));
    let limited = ok(&dir, &["audit", "lookup", "--limit", "1"]);
    assert_eq!(limited["Events"].as_array().unwrap().len(), 1);
    assert_eq!(limited["Truncated"], true);
    // Page by page with --marker, the same events as in one go.
    let all = ok(&dir, &["audit", "lookup", "--limit", "1000"]);
    assert_eq!(all["Truncated"], false);
    assert_eq!(all["NextMarker"], Value::Null);
    let mut paged = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut args = vec!["audit", "lookup", "--limit", "2"];
        if let Some(m) = &marker {
            args.extend(["--marker", m.as_str()]);
        }
        let page = ok(&dir, &args);
        paged.extend(page["Events"].as_array().unwrap().iter().cloned());
        if page["Truncated"] == false {
            assert_eq!(page["NextMarker"], Value::Null);
            break;
        }
        marker = Some(s(&page["NextMarker"]).to_owned());
        assert!(paged.len() < 1000, "lookup pages do not end");
    }
    refused(
        &run(&dir, &["audit", "lookup", "--marker", "nope"]),
        1,
        "InvalidMarkerException",
    );
    // The lookups themselves are events too: compare what both saw.
    let before: Vec<&Value> = all["Events"].as_array().unwrap().iter().collect();
    let tail = &paged[paged.len() - before.len()..];
    assert_eq!(
        tail.iter().collect::<Vec<_>>(),
        before,
        "paging with --marker saw other events than one lookup"
    );

    let nobody = user_with_profile(&dir, "nobody");
    refused(
        &run(&dir, &["--profile", "nobody", "key", "describe", &other]),
        3,
        "AccessDeniedException",
    );
    let denied = ok(
        &dir,
        &[
            "audit",
            "lookup",
            "--principal",
            &nobody,
            "--outcome",
            "denied",
        ],
    );
    let names: Vec<&Value> = denied["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["eventName"])
        .collect();
    assert_eq!(names, [&j!("DescribeKey")], "{denied}");
    assert_eq!(denied["Events"][0]["errorCode"], "AccessDeniedException");
    refused(
        &run(&dir, &["--profile", "nobody", "audit", "verify"]),
        3,
        "AccessDeniedException",
    );

    let verified = ok(&dir, &["audit", "verify"]);
    assert_eq!(verified["Valid"], true, "{verified}");
    assert_eq!(verified["FirstBrokenSequence"], Value::Null);
    assert!(verified["EventsChecked"].as_u64().unwrap() > 0);
    assert_eq!(verified["EventsChecked"], verified["HeadSequence"]);

    quiet(&dir, &["key", "update-description", &key, "audited"]);
    let history = ok(&dir, &["audit", "history", &key]);
    assert_eq!(history["KeyArn"], arn.as_str());
    let versions = history["Versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[0]["Configuration"]["description"], "");
    assert_eq!(versions[1]["Configuration"]["description"], "audited");
    refused(
        &run(
            &dir,
            &["audit", "history", "00000000-0000-0000-0000-000000000000"],
        ),
        1,
        "NotFoundException",
    );

    // Output formats. JSON is the default, and --output json the same.
    let default = run(&dir, &["key", "list"]);
    let explicit = run(&dir, &["--output", "json", "key", "list"]);
    assert_eq!(json(&default), json(&explicit));
    assert_eq!(json(&default)["Keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(&kmsctl_with_output_env(
            &dir,
            "table",
            &["--output", "json", "key", "list"]
        )),
        json(&default),
        "the flag wins over KMS_OUTPUT"
    );
    assert_eq!(
        json(&kmsctl_with_output_env(&dir, "json", &["key", "list"])),
        json(&default)
    );

    // A list answer as a table: a title with the count, column headers, a rule, rows.
    for out in [
        run(&dir, &["key", "list", "-o", "table"]),
        run(&dir, &["--output", "table", "key", "list"]),
        kmsctl_with_output_env(&dir, "table", &["key", "list"]),
    ] {
        let t = text(&out);
        assert!(serde_json::from_str::<Value>(&t).is_err(), "not JSON: {t}");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Keys (2)", "{t}");
        let columns: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(columns, ["KeyArn", "KeyId"], "{t}");
        assert!(lines[2].starts_with("---"), "{t}");
        assert_eq!(lines.len(), 5, "{t}");
        let row = lines
            .iter()
            .find(|l| l.contains(key.as_str()))
            .unwrap_or_else(|| panic!("no row for {key}: {t}"));
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [arn.as_str(), key.as_str()]
        );
    }
    assert_eq!(
        text(&run(&dir, &["alias", "list", "-o", "table"])),
        "Aliases (0)\n"
    );
    // A record as a table: Field/Value rows with dotted paths.
    let t = text(&run(&dir, &["-o", "table", "key", "describe", &key]));
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Field", "Value"]
    );
    for (field, value) in [
        ("KeyMetadata.KeyId", key.as_str()),
        ("KeyMetadata.KeyState", "Enabled"),
        ("KeyMetadata.Description", "audited"),
        ("KeyMetadata.Enabled", "true"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [field, value]),
            "no {field} = {value} row in:\n{t}"
        );
    }
    let t = text(&run(&dir, &["-o", "table", "policy", "list", &key]));
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["PolicyNames", "default"]),
        "{t}"
    );
    let t = text(&run(&dir, &["-o", "table", "audit", "verify"]));
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Valid", "true"]),
        "{t}"
    );
    // Refusals are the same whatever the format.
    refused(
        &run(&dir, &["-o", "table", "key", "describe", "alias/missing"]),
        1,
        "NotFoundException",
    );
    let bad = run(&dir, &["-o", "yaml", "key", "list"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("yaml"));
    assert_eq!(
        kmsctl_with_output_env(&dir, "xml", &["key", "list"])
            .status
            .code(),
        Some(2)
    );
}

/// Mistakes in an argument's value that kmsctl finds after parsing are
/// usage errors too (exit 2), as clap's own are.
#[test]
fn bad_argument_values_are_usage_errors() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let (key, arn) = create_key(&dir);
    let grantee = format!("arn:aws:iam::{}:user/admin", account(&dir));
    for args in [
        vec![
            "grant",
            "create",
            key.as_str(),
            "--grantee",
            &grantee,
            "--operation",
            "Frob",
        ],
        vec!["audit", "lookup", "--outcome", "maybe"],
        vec!["audit", "lookup", "--start", "yesterday"],
        vec!["audit", "lookup", "--end", "2026-13-01"],
        vec!["audit", "history", arn.as_str(), "--as-of", "now"],
    ] {
        let out = run(&dir, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // kmsctl bench's own checks, each naming the value at fault.
    for (args, named) in [
        (
            vec!["bench", "--op", "frobnicate", "--requests", "10"],
            "frobnicate",
        ),
        (
            vec!["bench", "--op", "encrypt=0", "--requests", "10"],
            "'0'",
        ),
        (vec!["bench", "--duration", "inf"], "--duration"),
        (
            vec!["bench", "--rounds", "0", "--requests", "10"],
            "--rounds",
        ),
        (vec!["bench", "--payload-size", "5000"], "--payload-size"),
        (vec!["bench", "--concurrency", "0"], "--concurrency"),
        // The daemon in these tests is plaintext: a TLS baseline would skew the ratio.
        (vec!["bench", "--tls", "--requests", "10"], "--tls"),
        (vec!["--session-token", "tok", "whoami"], "session token"),
    ] {
        let out = run(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
