//! The storage contract: one test suite that every adapter of `genai_store::Store` must pass.
//!
//! The application layer is written against the trait alone and must not be able to tell the
//! embedded SQLite store from the scale-out PostgreSQL one. Rather than trust two adapters to
//! agree, this crate holds the checks that make them agree, in `tests/`:
//!
//! * `tests/contract.rs` runs every case against SQLite (always, on a fresh file per test) and
//!   against PostgreSQL (on a fresh database per test, when `GENAI_TEST_POSTGRES_URL` is set;
//!   `GENAI_REQUIRE_POSTGRES=1` turns a missing or unreachable server into a failure, for CI).
//! * `tests/schema.rs` checks that the two adapters' migrations describe the same schema.
//!
//! The library itself is empty on purpose: the crate exists for its tests.
