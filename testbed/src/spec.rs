//! The testbed's data formats (TOML): a [`Topology`] says which sites a
//! cluster has, how wrong their clocks are and how they are linked; a
//! [`Scenario`] names a topology and says which faults happen to it when,
//! and what to expect. The built-in ones ship in `testbed/topologies/` and
//! `testbed/scenarios/`.
//!
//! Both load the same way ([`Topology::load`], [`Scenario::load`]: a
//! built-in name, else a file) and fail with one error type,
//! [`SpecError`]. The files below depend one way only: `fields` (shared
//! checks and [`LEADER`]) and `error` depend on nothing here, `topology` on
//! those, `scenario` on `topology`.

mod builtin;
mod error;
mod fields;
pub mod scenario;
pub mod topology;

pub use error::{SpecError, SpecKind};
pub use fields::LEADER;
pub use scenario::Scenario;
pub use topology::Topology;
