//! A fast path for checking full international numbers against the
//! `phonenumber` metadata.
//!
//! Why: `phonenumber` keeps every metadata pattern in one shared LRU cache
//! of 100 compiled regexes behind a mutex, hashing the pattern text on
//! each use. A country like India needs more patterns than that, so a file
//! of mobiles recompiles regexes on almost every row (about 14 µs a row:
//! minutes for ten million). This module compiles the patterns of each
//! country code once per thread and applies the same rules as
//! `phonenumber::is_valid` (region choice by leading digits or number type,
//! a number is valid when it matches the general pattern and one type's
//! pattern, possible lengths checked) to the number exactly as written.
//!
//! It only ever answers "valid as written". Anything else goes to the full
//! `phonenumber` parser, and so does any number that starts with what the
//! parser would strip as a national trunk prefix: the answer then is always
//! the crate's own.

use phonenumber::metadata::{Metadata, DATABASE};
use phonenumber::Type;
use regex::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Every number type `phonenumber` recognises besides the general one.
const TYPES: [Type; 10] = [
    Type::PremiumRate,
    Type::TollFree,
    Type::SharedCost,
    Type::Voip,
    Type::PersonalNumber,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
    Type::FixedLine,
    Type::Mobile,
];

struct Desc {
    lengths: Vec<u16>,
    re: Regex,
}

impl Desc {
    fn new(d: &phonenumber::metadata::Descriptor) -> Option<Desc> {
        Some(Desc {
            lengths: d.possible_length().to_vec(),
            re: compile(d.national_number().as_str())?,
        })
    }

    /// The crate's rule: a possible length, and the pattern matching from
    /// the first digit.
    fn matches(&self, v: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(v.len() as u16))) && self.re.is_match(v)
    }
}

struct Region {
    leading: Option<Regex>,
    /// What the parser would strip as a national (trunk) prefix.
    trunk: Option<Regex>,
    general: Desc,
    types: Vec<Desc>,
}

impl Region {
    fn new(meta: &Metadata) -> Option<Region> {
        Some(Region {
            leading: match meta.leading_digits() {
                Some(l) => Some(compile(l.as_str())?),
                None => None,
            },
            trunk: match (meta.national_prefix_for_parsing(), meta.national_prefix()) {
                (Some(p), _) => Some(compile(p.as_str())?),
                (None, Some(p)) => Some(compile(&regex::escape(p))?),
                (None, None) => None,
            },
            general: Desc::new(meta.descriptors().get(Type::Unknown)?)?,
            types: TYPES
                .iter()
                .filter_map(|t| meta.descriptors().get(*t))
                .map(Desc::new)
                .collect::<Option<_>>()?,
        })
    }

    fn may_strip(&self, national: &str) -> bool {
        self.trunk.as_ref().is_some_and(|t| t.is_match(national))
    }

    fn knows(&self, national: &str) -> bool {
        self.general.matches(national) && self.types.iter().any(|d| d.matches(national))
    }
}

/// Compiles a metadata pattern anchored at the start: "a match starting
/// at the first digit" (the crate's test) is then a plain `is_match`, which
/// stops early instead of searching the whole number for the leftmost
/// match.
fn compile(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

/// The regions of one country code, in the database's order.
enum Code {
    Single(Region),
    Shared(Vec<Region>),
}

fn load(code: u16) -> Option<Code> {
    let regions = DATABASE.region(&code)?;
    if regions.len() == 1 {
        let meta = if regions[0] == "001" {
            DATABASE.by_code(&code)?.into_iter().next()?
        } else {
            DATABASE.by_id(regions[0])?
        };
        return Some(Code::Single(Region::new(meta)?));
    }
    regions
        .iter()
        .map(|r| DATABASE.by_id(*r).and_then(Region::new))
        .collect::<Option<Vec<_>>>()
        .map(Code::Shared)
}

thread_local! {
    static CODES: RefCell<HashMap<u16, Option<Rc<Code>>>> = RefCell::new(HashMap::new());
}

fn code(code: u16) -> Option<Rc<Code>> {
    CODES.with(|c| {
        c.borrow_mut()
            .entry(code)
            .or_insert_with(|| load(code).map(Rc::new))
            .clone()
    })
}

/// Whether `digits` (country code then national number, digits only) is a
/// valid number exactly as written. `false` means "not known valid": the
/// caller asks the full parser.
pub fn valid_as_written(digits: &str) -> bool {
    // Country codes are prefix-free: the first 1 to 3 digits that name one
    // are the code.
    for k in 1..=3.min(digits.len()) {
        let Ok(c) = digits[..k].parse::<u16>() else {
            return false;
        };
        if DATABASE.region(&c).is_none() {
            continue;
        }
        let national = &digits[k..];
        // The parser may strip a trunk prefix and judge what is left: leave
        // such numbers to it.
        return match code(c).as_deref() {
            Some(Code::Single(r)) => !r.may_strip(national) && r.knows(national),
            Some(Code::Shared(regions)) if regions.iter().any(|r| r.may_strip(national)) => false,
            Some(Code::Shared(regions)) => regions
                .iter()
                .find(|r| match &r.leading {
                    Some(l) => l.is_match(national),
                    None => r.knows(national),
                })
                .is_some_and(|r| r.knows(national)),
            None => false,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's own answer for a number written with its country code.
    fn slow(digits: &str) -> Option<String> {
        let n = phonenumber::parse(None, format!("+{digits}")).ok()?;
        phonenumber::is_valid(&n).then(|| {
            n.format()
                .mode(phonenumber::Mode::E164)
                .to_string()
                .trim_start_matches('+')
                .to_string()
        })
    }

    #[test]
    fn agrees_with_the_crate_on_every_example_number() {
        let mut checked = 0;
        for meta in DATABASE.iter() {
            let cc = meta.country_code();
            for t in TYPES {
                let Some(example) = meta.descriptors().get(t).and_then(|d| d.example()) else {
                    continue;
                };
                for digits in [
                    format!("{cc}{example}"),
                    // Variants that may be invalid: one digit more or less,
                    // the last digit changed.
                    format!("{cc}{example}0"),
                    format!("{cc}{}", &example[..example.len() - 1]),
                    format!("{cc}{}9", &example[..example.len() - 1]),
                ] {
                    if valid_as_written(&digits) {
                        assert_eq!(slow(&digits).as_deref(), Some(digits.as_str()), "{digits}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked > 500,
            "only {checked} examples were valid as written"
        );
    }
}
