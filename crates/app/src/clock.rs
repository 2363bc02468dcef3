//! The server's clock: the system clock, or a manual one that tests and demos move forward
//! (`--manual-clock`), so month boundaries can be crossed in seconds instead of weeks.

use chrono::Utc;
use genai_core::calendar::truncate_to_millis;
use genai_core::Instant;
use std::sync::Mutex;

/// Where `now` comes from. Instants are truncated to milliseconds, the precision they are
/// stored with, so what is returned equals what is read back.
#[derive(Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A clock that only moves when told to.
    Manual(Mutex<Instant>),
}

/// Why the manual clock did not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockError {
    /// The server runs on the system clock.
    NotManual,
    /// The new instant is before the current one.
    Backwards,
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: Instant) -> Clock {
        Clock::Manual(Mutex::new(truncate_to_millis(start)))
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => truncate_to_millis(Utc::now()),
            Clock::Manual(t) => *t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// Moves a manual clock forward (or keeps it where it is).
    pub fn set(&self, to: Instant) -> Result<Instant, ClockError> {
        match self {
            Clock::System => Err(ClockError::NotManual),
            Clock::Manual(t) => {
                let mut t = t.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let to = truncate_to_millis(to);
                if to < *t {
                    return Err(ClockError::Backwards);
                }
                *t = to;
                Ok(to)
            }
        }
    }
}
