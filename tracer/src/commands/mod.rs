//! One module per subcommand; `collect` is the live loop they share.
pub mod closes;
pub mod collect;
pub mod doctor;
pub mod histogram;
pub mod record;
pub mod run;
pub mod states;
pub mod top;
