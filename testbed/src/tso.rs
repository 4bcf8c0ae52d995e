//! The cluster's TSO under test: [`load`] asks every site for timestamps
//! while a cluster runs, [`check`] judges what it recorded (no duplicate,
//! real-time order, honest physical parts), and [`status`] reads from the
//! status files which site leads. `load` records in `check`'s types;
//! `status` stands alone.

pub mod check;
pub mod load;
pub mod status;
