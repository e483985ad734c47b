//! When an email is due: the alert state machine, as a pure function.
//!
//! Each segment stores what its recipients were last told (`alert_state`,
//! `ok` or `failing`). After every finished execution, [`decide`] takes that
//! state and the execution's result and returns the email to send, if any,
//! and the new state:
//!
//! | execution                                  | state     | email    | new state |
//! | ------------------------------------------ | --------- | -------- | --------- |
//! | failed, a retry will follow                | any       | none     | unchanged |
//! | failed, final (last attempt or next slot)  | `ok`      | failure  | `failing` |
//! | failed, final                              | `failing` | none     | `failing` |
//! | success or unchanged                       | `failing` | recovery | `ok`      |
//! | success that rejected rows                 | `ok`      | warning  | `ok`      |
//! | success without rejected rows, unchanged   | `ok`      | none     | `ok`      |
//! | missed, running                            | any       | none     | unchanged |
//!
//! A warning is sent for *every* load that rejected rows, not once per
//! change: each load is a different file whose bad rows are missing from the
//! segment, so each is news to the recipients; it happens at most once per
//! slot, never once per cron tick. A recovery that also rejected rows sends
//! one email, the recovery notice, which lists those rows too.

use crate::segment::AlertState;
use crate::store::Outcome;

/// The kind of email an execution calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The slot ended in failure.
    Failure,
    /// The load succeeded but rejected rows.
    Warning,
    /// The first success after a failure.
    Recovery,
}

impl Kind {
    /// A word for the log: `failure`, `warning`, `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failure => "failure",
            Kind::Warning => "warning",
            Kind::Recovery => "recovery",
        }
    }
}

/// What to do after one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub email: Option<Kind>,
    pub state: AlertState,
}

/// Decides the email and the new alert state for an execution that ended
/// with `outcome`, having rejected `rejected` rows, where `final_failure`
/// says that no retry of the slot will follow.
pub fn decide(state: AlertState, outcome: Outcome, rejected: i64, final_failure: bool) -> Decision {
    let (email, new) = match (outcome, state) {
        (Outcome::Failed, _) if !final_failure => (None, state),
        (Outcome::Failed, AlertState::Ok) => (Some(Kind::Failure), AlertState::Failing),
        (Outcome::Failed, AlertState::Failing) => (None, AlertState::Failing),
        (Outcome::Success | Outcome::Unchanged, AlertState::Failing) => {
            (Some(Kind::Recovery), AlertState::Ok)
        }
        (Outcome::Success, AlertState::Ok) if rejected > 0 => (Some(Kind::Warning), AlertState::Ok),
        (Outcome::Success | Outcome::Unchanged, AlertState::Ok) => (None, AlertState::Ok),
        (Outcome::Missed | Outcome::Running, _) => (None, state),
    };
    Decision { email, state: new }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::{Failing, Ok};

    fn d(
        state: AlertState,
        outcome: Outcome,
        rejected: i64,
        fin: bool,
    ) -> (Option<Kind>, AlertState) {
        let r = decide(state, outcome, rejected, fin);
        (r.email, r.state)
    }

    #[test]
    fn table() {
        assert_eq!(d(Ok, Outcome::Failed, 0, false), (None, Ok));
        assert_eq!(d(Failing, Outcome::Failed, 0, false), (None, Failing));
        assert_eq!(
            d(Ok, Outcome::Failed, 0, true),
            (Some(Kind::Failure), Failing)
        );
        assert_eq!(
            d(Ok, Outcome::Failed, 500, true),
            (Some(Kind::Failure), Failing)
        );
        assert_eq!(d(Failing, Outcome::Failed, 0, true), (None, Failing));
        assert_eq!(
            d(Failing, Outcome::Success, 0, false),
            (Some(Kind::Recovery), Ok)
        );
        assert_eq!(
            d(Failing, Outcome::Success, 3, false),
            (Some(Kind::Recovery), Ok)
        );
        assert_eq!(
            d(Failing, Outcome::Unchanged, 0, false),
            (Some(Kind::Recovery), Ok)
        );
        assert_eq!(d(Ok, Outcome::Success, 3, false), (Some(Kind::Warning), Ok));
        assert_eq!(d(Ok, Outcome::Success, 0, false), (None, Ok));
        assert_eq!(d(Ok, Outcome::Unchanged, 0, false), (None, Ok));
        assert_eq!(d(Ok, Outcome::Missed, 0, true), (None, Ok));
        assert_eq!(d(Failing, Outcome::Missed, 0, true), (None, Failing));
        assert_eq!(d(Failing, Outcome::Running, 0, true), (None, Failing));
    }

    /// Three days of a daily segment with three attempts a slot: fails all
    /// day one, all day two, recovers on day three's second attempt, then a
    /// load with rejected rows. One failure, one recovery, one warning.
    #[test]
    fn sequence_sends_one_email_per_change() {
        let runs = [
            (Outcome::Failed, 0, false),
            (Outcome::Failed, 0, false),
            (Outcome::Failed, 0, true),
            (Outcome::Failed, 0, false),
            (Outcome::Failed, 0, false),
            (Outcome::Failed, 0, true),
            (Outcome::Failed, 0, false),
            (Outcome::Success, 0, false),
            (Outcome::Unchanged, 0, false),
            (Outcome::Success, 2, false),
        ];
        let mut state = Ok;
        let mut sent = Vec::new();
        for (outcome, rejected, fin) in runs {
            let r = decide(state, outcome, rejected, fin);
            state = r.state;
            sent.extend(r.email);
        }
        assert_eq!(sent, vec![Kind::Failure, Kind::Recovery, Kind::Warning]);
        assert_eq!(state, Ok);
    }
}
