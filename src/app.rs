//! The context a command runs in: configuration, clock, output options and
//! the database, opened on first use.

use crate::cli::Global;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use anyhow::Result;

/// Everything a command needs besides its own arguments.
pub struct App {
    pub config: Config,
    pub clock: Clock,
    /// Print JSON instead of tables.
    pub json: bool,
    /// Colour on stdout.
    pub color: bool,
    /// A progress bar may be drawn on stderr.
    pub progress: bool,
    store: Option<Store>,
}

impl App {
    /// Loads the configuration named by the global options.
    pub fn new(global: &Global) -> Result<App> {
        let config = Config::find_and_load(global.config.as_deref())?;
        Ok(App::with_config(config, global))
    }

    /// An app over an already loaded configuration.
    pub fn with_config(config: Config, global: &Global) -> App {
        crate::output::set_display_zone(config.timezone);
        let clock = match global.now {
            Some(t) => Clock::starting_at(t),
            None => Clock::system(),
        };
        App {
            config,
            clock,
            json: global.json,
            color: crate::output::stdout_color(),
            progress: !global.quiet && crate::output::stderr_is_terminal(),
            store: None,
        }
    }

    /// The database, opened (and migrated) on first use.
    pub fn store(&mut self) -> Result<&mut Store> {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.config.database)?);
        }
        Ok(self.store.as_mut().expect("just opened"))
    }
}
