//! One module per subcommand, each with its options in [`options`]; they run the engine over a
//! source and hand the results to a view or a service.
pub mod closes;
pub mod doctor;
pub mod histogram;
pub mod options;
pub mod record;
pub mod run;
pub mod states;
pub mod top;
