//! Planning at fleet scale, by simulation (no servers): generated states
//! and mirrors, planned by the same pure [`super::plan::plan`].
