//! Tags: TagResource, UntagResource and ListResourceTags.

use std::collections::HashSet;

use super::{Kms, paging};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::Tag;

/// AWS's tag alphabet: letters, digits, spaces (Unicode separators, not
/// line breaks or other control characters) and `_ . : / = + - @`.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

fn validate_tag_key(k: &str) -> Result<()> {
    let n = k.chars().count();
    if !(1..=128).contains(&n) {
        return Err(KmsError::TagException(format!(
            "tag key must be 1 to 128 characters, got {n}"
        )));
    }
    if !k.chars().all(tag_char) {
        return Err(KmsError::TagException(
            "tag keys may hold only letters, digits, spaces and _.:/=+-@".into(),
        ));
    }
    if k.to_ascii_lowercase().starts_with("aws:") {
        return Err(KmsError::TagException(format!(
            "tag key '{k}' uses the reserved prefix 'aws:'"
        )));
    }
    Ok(())
}

/// Checks tags: keys of 1 to 128 characters without the `aws:` prefix,
/// values of at most 256, both of AWS's alphabet ([`tag_char`]), no key
/// twice, at most `max`.
pub fn validate_tags(tags: &[Tag], max: usize) -> Result<()> {
    if tags.len() > max {
        return Err(KmsError::LimitExceededException(format!(
            "a key can have at most {max} tags"
        )));
    }
    let mut seen = HashSet::new();
    for t in tags {
        validate_tag_key(&t.key)?;
        if t.value.chars().count() > 256 {
            return Err(KmsError::TagException(format!(
                "the value of tag '{}' is longer than 256 characters",
                t.key
            )));
        }
        if !t.value.chars().all(tag_char) {
            return Err(KmsError::TagException(format!(
                "the value of tag '{}' may hold only letters, digits, spaces and _.:/=+-@",
                t.key
            )));
        }
        if !seen.insert(t.key.as_str()) {
            return Err(KmsError::TagException(format!(
                "tag key '{}' is given more than once",
                t.key
            )));
        }
    }
    Ok(())
}

impl Kms {
    /// TagResource: adds tags, replacing the value of existing keys.
    pub async fn tag_resource(&self, caller: &Caller, key_id: &str, tags: Vec<Tag>) -> Result<()> {
        if tags.is_empty() {
            return Err(KmsError::validation("tags must not be empty"));
        }
        validate_tags(&tags, self.settings.max_tags_per_key)?;
        let key = self.resolve_key_only(caller, key_id, "TagResource").await?;
        self.check_not_pending(&key)?;
        Ok(self
            .store
            .put_tags(key.id, tags, self.settings.max_tags_per_key)
            .await?)
    }

    /// UntagResource.
    pub async fn untag_resource(
        &self,
        caller: &Caller,
        key_id: &str,
        tag_keys: Vec<String>,
    ) -> Result<()> {
        if tag_keys.is_empty() {
            return Err(KmsError::validation("tag_keys must not be empty"));
        }
        for k in &tag_keys {
            validate_tag_key(k)?;
        }
        let key = self
            .resolve_key_only(caller, key_id, "UntagResource")
            .await?;
        self.check_not_pending(&key)?;
        Ok(self.store.remove_tags(key.id, tag_keys).await?)
    }

    /// ListResourceTags.
    pub async fn list_resource_tags(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<Tag>, Option<String>)> {
        let limit = paging::limit(limit, 50, 50)?;
        let after = paging::position(marker)?;
        let key = self
            .resolve_key_only(caller, key_id, "ListResourceTags")
            .await?;
        let tags = self
            .store
            .list_tags(key.id, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(tags, limit, |t| t.key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn tag_rules() {
        validate_tags(
            &[
                tag("env", "prod"),
                tag(&"k".repeat(128), &"v".repeat(256)),
                tag("empty", ""),
            ],
            50,
        )
        .unwrap();
        assert!(matches!(
            validate_tags(&[tag("", "v")], 50),
            Err(KmsError::TagException(_))
        ));
        assert!(matches!(
            validate_tags(&[tag(&"k".repeat(129), "v")], 50),
            Err(KmsError::TagException(_))
        ));
        assert!(matches!(
            validate_tags(&[tag("k", &"v".repeat(257))], 50),
            Err(KmsError::TagException(_))
        ));
        assert!(matches!(
            validate_tags(&[tag("aws:x", "v")], 50),
            Err(KmsError::TagException(_))
        ));
        // AWS's alphabet, in keys and values alike.
        validate_tags(
            &[
                tag("cost center/été", "équipe 7 @ hq: a+b=c_d-e.f"),
                tag("日本", "値\u{3000}二"),
            ],
            50,
        )
        .unwrap();
        for bad in [
            "line\nbreak",
            "nul\0",
            "tab\t",
            "a<b>",
            "quote\"",
            "semi;",
            "bidi\u{202e}",
        ] {
            assert!(
                matches!(
                    validate_tags(&[tag(bad, "v")], 50),
                    Err(KmsError::TagException(_))
                ),
                "key {bad:?}"
            );
            assert!(
                matches!(
                    validate_tags(&[tag("k", bad)], 50),
                    Err(KmsError::TagException(_))
                ),
                "value {bad:?}"
            );
        }
        assert!(matches!(
            validate_tags(&[tag("AWS:x", "v")], 50),
            Err(KmsError::TagException(_))
        ));
        assert!(matches!(
            validate_tags(&[tag("a", "1"), tag("a", "2")], 50),
            Err(KmsError::TagException(_))
        ));
        let many: Vec<Tag> = (0..51).map(|i| tag(&i.to_string(), "")).collect();
        assert!(matches!(
            validate_tags(&many, 50),
            Err(KmsError::LimitExceededException(_))
        ));
    }
}
