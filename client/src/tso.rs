//! The TSO client (being written).
