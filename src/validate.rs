//! Pure CSV rules: header names, identifier types, row checks.

/// Whether `s` is a syntactically valid email address.
pub fn is_valid_email(s: &str) -> bool {
    email_address::EmailAddress::parse_with_options(s, email_address::Options::default()).is_ok()
        && s.contains('@')
        && !s.contains(char::is_whitespace)
}
