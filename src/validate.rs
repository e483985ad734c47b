//! Pure CSV rules: header names, identifier types, row checks.
//!
//! Everything here works on one value at a time and touches no file or
//! database, so that `load` can stream tens of millions of rows through it
//! and the rules can be unit tested one by one. A check returns the
//! normalised value (what the store keeps and compares) or the reason a
//! person reads in the execution log.

mod phone;

use crate::segment::IdType;
use std::cmp::Ordering;

/// Longest `external_id` accepted, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

/// Whether `s` is a syntactically valid email address.
pub fn is_valid_email(s: &str) -> bool {
    is_plain_email(s.as_bytes()) || is_valid_email_full(s)
}

/// The full check: what the `email_address` crate accepts, with an `@`
/// and no whitespace.
fn is_valid_email_full(s: &str) -> bool {
    email_address::EmailAddress::parse_with_options(s, email_address::Options::default()).is_ok()
        && s.contains('@')
        && !s.contains(char::is_whitespace)
}

/// A quick yes for the ordinary address, `local@domain` in ASCII letters,
/// digits and `._+-`: the full parser costs more than reading a whole CSV
/// row, and almost every address is ordinary. `false` means "ask the full
/// parser", never "invalid". Every address this accepts, the full check
/// accepts too: one `@` (so no quoted local part, no display name), a
/// local part of at most 64 bytes made of non-empty dot-separated atoms,
/// and a domain of at most 254 bytes whose labels are 1 to 63 characters
/// starting and ending with a letter or digit.
fn is_plain_email(s: &[u8]) -> bool {
    let Some(at) = s.iter().position(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty() || local.len() > 64 || domain.is_empty() || domain.len() > 254 {
        return false;
    }
    let atom = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-');
    let local_ok = local
        .split(|&b| b == b'.')
        .all(|part| !part.is_empty() && part.iter().all(|&b| atom(b)));
    local_ok
        && domain.split(|&b| b == b'.').all(|label| match label {
            [first, .., last] | [first @ last] => {
                label.len() <= 63
                    && first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && label
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            }
            [] => false,
        })
}

/// The identifier type a first header names: `user_id`, `mobile`, `email`
/// or `external_id`, case and surrounding spaces ignored.
pub fn parse_id_type(header: &str) -> Option<IdType> {
    let h = header.trim().to_ascii_lowercase();
    IdType::NAMES
        .iter()
        .find(|n| **n == h)
        .and_then(|n| n.parse().ok())
}

/// A normalised identifier: what the store keeps in `member.key` and what
/// duplicates are detected on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `user_id` and `mobile` (E.164 digits without `+`).
    Int(i64),
    /// `email` (lower-cased) and `external_id`.
    Text(String),
}

impl Key {
    /// Orders keys as SQLite orders the untyped `key` column: integers
    /// numerically, below all text; text by bytes (BINARY collation).
    pub fn sqlite_cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Key::Int(_), Key::Text(_)) => Ordering::Less,
            (Key::Text(_), Key::Int(_)) => Ordering::Greater,
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sqlite_cmp(other)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(s) => f.write_str(s),
        }
    }
}

/// Checks one identifier of type `id_type` and returns its normalised
/// form, or the reason it is refused. Surrounding spaces are ignored for
/// every type.
pub fn check_id(id_type: IdType, raw: &str) -> Result<Key, String> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(format!("{id_type} is empty"));
    }
    match id_type {
        IdType::UserId => check_user_id(v).map(Key::Int),
        IdType::Mobile => check_mobile(v).map(Key::Int),
        IdType::Email => {
            let mut key = String::new();
            check_email_into(v, &mut key).map(|()| Key::Text(key))
        }
        IdType::ExternalId => check_external_id(v).map(Key::Text),
    }
}

/// A positive integer that fits a signed 64-bit INTEGER.
fn check_user_id(v: &str) -> Result<i64, String> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "user_id `{}` is not a positive integer",
            shorten(v)
        ));
    }
    match v.parse::<i64>() {
        Ok(0) => Err("user_id `0` is not a positive integer".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "user_id `{}` is too large (the largest is {})",
            shorten(v),
            i64::MAX
        )),
    }
}

/// The full international number with country code, digits only, no `+`,
/// valid for its country. Returns the E.164 digits, so that two spellings
/// of one number (a national trunk `0` kept after the country code) meet.
fn check_mobile(v: &str) -> Result<i64, String> {
    if v.starts_with('+') {
        return Err(format!(
            "mobile `{}` starts with `+`: write the number with its country code and no `+`",
            shorten(v)
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "mobile `{}` contains something other than digits: write the full international \
             number, e.g. 919972752991",
            shorten(v)
        ));
    }
    // E.164 allows at most 15 digits; fewer than 8 cannot hold a country
    // code and a subscriber number anywhere.
    if v.len() < 8 || v.len() > 15 {
        return Err(format!(
            "mobile `{v}` has {} digits: a full international number has 8 to 15",
            v.len()
        ));
    }
    if phone::valid_as_written(v) {
        return v.parse::<i64>().map_err(|e| format!("mobile `{v}`: {e}"));
    }
    let invalid = || {
        format!("mobile `{v}` is not a valid phone number (is the country code missing or wrong?)")
    };
    let number = phonenumber::parse(None, format!("+{v}")).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    e164.trim_start_matches('+')
        .parse::<i64>()
        .map_err(|_| invalid())
}

/// [`check_id`] for an `email`, writing the normalised address into `out`
/// (cleared first) so that a caller checking millions of rows reuses one
/// buffer: a syntactically valid address, lower-cased so that comparisons
/// ignore case.
pub fn check_email_into(raw: &str, out: &mut String) -> Result<(), String> {
    let v = raw.trim();
    out.clear();
    if v.is_empty() {
        return Err(format!("{} is empty", IdType::Email));
    }
    if is_plain_email(v.as_bytes()) {
        // ASCII only, so this is what `to_lowercase` gives.
        out.push_str(v);
        out.make_ascii_lowercase();
        Ok(())
    } else if is_valid_email_full(v) {
        out.push_str(&v.to_lowercase());
        Ok(())
    } else {
        Err(format!(
            "email `{}` is not a valid email address",
            shorten(v)
        ))
    }
}

/// Any non-empty text up to 128 characters, without control characters
/// (a stray newline or NUL in an identifier is a broken export).
fn check_external_id(v: &str) -> Result<String, String> {
    let n = v.chars().count();
    if n > MAX_EXTERNAL_ID_CHARS {
        return Err(format!(
            "external_id `{}` is {n} characters long; the limit is {MAX_EXTERNAL_ID_CHARS}",
            shorten(v)
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(format!(
            "external_id `{}` contains a control character",
            shorten(v).escape_debug()
        ));
    }
    Ok(v.to_string())
}

/// Checks a partition value and returns it trimmed.
pub fn check_partition(raw: &str) -> Result<&str, String> {
    let v = raw.trim();
    if v.is_empty() {
        Err("the partition value is empty".into())
    } else {
        Ok(v)
    }
}

/// Cuts a value quoted in a reason to 40 characters.
fn shorten(v: &str) -> String {
    match v.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &v[..i]),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_ignore_case_and_spaces() {
        assert_eq!(parse_id_type("user_id"), Some(IdType::UserId));
        assert_eq!(parse_id_type("  USER_ID "), Some(IdType::UserId));
        assert_eq!(parse_id_type("Mobile"), Some(IdType::Mobile));
        assert_eq!(parse_id_type("EMAIL"), Some(IdType::Email));
        assert_eq!(parse_id_type("\texternal_id"), Some(IdType::ExternalId));
        assert_eq!(parse_id_type("userid"), None);
        assert_eq!(parse_id_type("user id"), None);
        assert_eq!(parse_id_type(""), None);
        assert_eq!(parse_id_type("phone"), None);
    }

    #[test]
    fn user_ids_are_positive_integers() {
        assert_eq!(check_id(IdType::UserId, "42"), Ok(Key::Int(42)));
        assert_eq!(check_id(IdType::UserId, " 42 "), Ok(Key::Int(42)));
        assert_eq!(check_id(IdType::UserId, "0042"), Ok(Key::Int(42)));
        assert_eq!(
            check_id(IdType::UserId, "9223372036854775807"),
            Ok(Key::Int(i64::MAX))
        );
        assert!(check_id(IdType::UserId, "9223372036854775808")
            .unwrap_err()
            .contains("too large"));
        assert!(check_id(IdType::UserId, "0")
            .unwrap_err()
            .contains("positive"));
        assert!(check_id(IdType::UserId, "-5")
            .unwrap_err()
            .contains("positive"));
        assert!(check_id(IdType::UserId, "+5").is_err());
        assert!(check_id(IdType::UserId, "1.5").is_err());
        assert!(check_id(IdType::UserId, "1e3").is_err());
        assert!(check_id(IdType::UserId, "abc").is_err());
        assert!(check_id(IdType::UserId, "").unwrap_err().contains("empty"));
        assert!(check_id(IdType::UserId, "   ")
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn mobiles_are_real_international_numbers() {
        assert_eq!(
            check_id(IdType::Mobile, "919972752991"),
            Ok(Key::Int(919972752991))
        );
        assert_eq!(
            check_id(IdType::Mobile, "447911123456"),
            Ok(Key::Int(447911123456))
        );
        assert_eq!(
            check_id(IdType::Mobile, "14155552671"),
            Ok(Key::Int(14155552671))
        );
        let plus = check_id(IdType::Mobile, "+919972752991").unwrap_err();
        assert!(plus.contains("no `+`"), "{plus}");
        assert!(check_id(IdType::Mobile, "91 99727 52991").is_err());
        assert!(check_id(IdType::Mobile, "91-9972752991").is_err());
        // National number without its country code.
        assert!(check_id(IdType::Mobile, "9972752991").is_err());
        assert!(check_id(IdType::Mobile, "1234")
            .unwrap_err()
            .contains("8 to 15"));
        assert!(check_id(IdType::Mobile, "1234567890123456").is_err());
        // Country code 999 does not exist.
        assert!(check_id(IdType::Mobile, "99912345678").is_err());
    }

    #[test]
    fn emails_are_lower_cased() {
        assert_eq!(
            check_id(IdType::Email, " Ann.Lee@Example.COM "),
            Ok(Key::Text("ann.lee@example.com".into()))
        );
        assert!(check_id(IdType::Email, "ann").is_err());
        assert!(check_id(IdType::Email, "ann@").is_err());
        assert!(check_id(IdType::Email, "@example.com").is_err());
        assert!(check_id(IdType::Email, "ann lee@example.com").is_err());
        assert!(check_id(IdType::Email, "ann@@example.com").is_err());
    }

    /// Addresses near every rule of the full parser: the quick check and
    /// the full one must agree on each (the quick one may only pass an
    /// address on).
    #[test]
    fn quick_email_check_agrees_with_the_full_parser() {
        let local64 = "a".repeat(64);
        let label63 = "d".repeat(63);
        let long_domain = format!("{0}.{0}.{0}.{1}.com", label63, "e".repeat(58));
        let mut cases: Vec<String> = [
            "ann@example.com",
            "Ann.Lee@Example.COM",
            "a@b",
            "a@b.c",
            "1@2",
            "a+tag@ex-ample.co.uk",
            "a_b-c+d@x_y.z",
            "first.last@sub.domain.org",
            ".ann@example.com",
            "ann.@example.com",
            "an..n@example.com",
            "ann@.example.com",
            "ann@example.com.",
            "ann@example..com",
            "ann@-example.com",
            "ann@example-.com",
            "ann@_example.com",
            "ann@example_.com",
            "ann@ex_ample.com",
            "ann@ex+ample.com",
            "ann@+example.com",
            "ann@",
            "@example.com",
            "ann",
            "",
            "@",
            "ann@@example.com",
            "ann@exa@mple.com",
            "\"ann@x\"@example.com",
            "\"ann lee\"@example.com",
            "\"\"@example.com",
            "ann lee@example.com",
            "ann@exa mple.com",
            "ann\t@example.com",
            "Ann <ann@example.com>",
            "<ann@example.com>",
            "ann@[127.0.0.1]",
            "ann@[IPv6:::1]",
            "ann@example.com ",
            "an(n)@example.com",
            "an,n@example.com",
            "ann!#$%&'*/=?^`{|}~@example.com",
            "ann@exa!mple.com",
            "jörg@example.com",
            "ann@bücher.de",
            "ann@例え.jp",
            "ANN@ÉXAMPLE.COM",
            "mailto:ann@example.com",
            "ann@example.com\u{0}",
            "ann@1.2.3.4",
            "ann@123",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cases.push(format!("{local64}@example.com"));
        cases.push(format!("{local64}a@example.com"));
        cases.push(format!("ann@{label63}.com"));
        cases.push(format!("ann@{label63}d.com"));
        cases.push(format!("ann@{long_domain}"));
        cases.push(format!("ann@{long_domain}x"));
        for c in &cases {
            let full = is_valid_email_full(c);
            assert!(!is_plain_email(c.as_bytes()) || full, "{c:?}");
            assert_eq!(is_valid_email(c), full, "{c:?}");
            let mut out = String::from("stale");
            let checked = check_email_into(c, &mut out);
            let trimmed = c.trim();
            if !trimmed.is_empty() && is_valid_email_full(trimmed) {
                assert_eq!(checked, Ok(()), "{c:?}");
                assert_eq!(out, trimmed.to_lowercase(), "{c:?}");
            } else {
                assert!(checked.is_err(), "{c:?}");
            }
        }
        // The lengths at the limits really sit on both sides of them.
        assert!(is_plain_email(format!("ann@{long_domain}").as_bytes()));
        assert!(!is_valid_email(&format!("ann@{long_domain}x")));
        assert!(!is_valid_email(&format!("{local64}a@example.com")));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Random strings over the characters every rule looks at.
        #[test]
        fn quick_email_check_never_accepts_what_the_parser_refuses(
            s in "[aZ0_+\\-.@ \"<>\\[\\]é!,\t]{0,12}"
        ) {
            let full = is_valid_email_full(&s);
            proptest::prop_assert!(!is_plain_email(s.as_bytes()) || full, "{:?}", s);
            proptest::prop_assert_eq!(is_valid_email(&s), full, "{:?}", s);
        }

        /// Random strings shaped like addresses, so that many pass.
        #[test]
        fn quick_email_check_agrees_on_address_shapes(
            s in "[aZ0_+-]{0,3}(\\.[aZ0_+-]{0,3}){0,2}@[aZ0_+-]{0,3}(\\.[aZ0_+-]{0,3}){0,2}"
        ) {
            let full = is_valid_email_full(&s);
            proptest::prop_assert!(!is_plain_email(s.as_bytes()) || full, "{:?}", s);
            proptest::prop_assert_eq!(is_valid_email(&s), full, "{:?}", s);
        }
    }

    #[test]
    fn external_ids_are_short_text() {
        assert_eq!(
            check_id(IdType::ExternalId, " AbC-1 "),
            Ok(Key::Text("AbC-1".into()))
        );
        let max = "é".repeat(128);
        assert_eq!(
            check_id(IdType::ExternalId, &max),
            Ok(Key::Text(max.clone()))
        );
        let long = check_id(IdType::ExternalId, &"x".repeat(129)).unwrap_err();
        assert!(long.contains("129 characters"), "{long}");
        assert!(check_id(IdType::ExternalId, "").is_err());
        assert!(check_id(IdType::ExternalId, "a\u{0}b").is_err());
    }

    #[test]
    fn partitions_are_trimmed_and_non_empty() {
        assert_eq!(check_partition("  high "), Ok("high"));
        assert!(check_partition("   ").is_err());
        assert!(check_partition("").is_err());
    }

    #[test]
    fn keys_order_like_sqlite() {
        let mut keys = vec![
            Key::Text("b".into()),
            Key::Int(10),
            Key::Text("B".into()),
            Key::Int(-1),
            Key::Text("é".into()),
            Key::Int(9),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                Key::Int(-1),
                Key::Int(9),
                Key::Int(10),
                Key::Text("B".into()),
                Key::Text("b".into()),
                Key::Text("é".into()),
            ]
        );
    }
}
