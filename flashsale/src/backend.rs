//! Which implementation of the engine a client talks to: declared once for
//! the client, the API's and the worker's settings (`ENGINE`) and the tests.

/// The engine as a server runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The `FLASHSALE.*` commands of the Redis module.
    Module,
    /// `FCALL flashsale_*`: the Redis Functions library (`lua/flashsale.lua`).
    Lua,
}

impl Backend {
    /// How the API reports it (`/readyz`, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Module => "module",
            Backend::Lua => "functions",
        }
    }
}

/// Which backend to use, as configured: `ENGINE=auto|module|lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BackendChoice {
    /// The module when the server has it, otherwise the Functions library.
    #[default]
    Auto,
    Module,
    /// The Redis Functions library (loaded if missing or outdated).
    Lua,
}

impl From<Backend> for BackendChoice {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Module => BackendChoice::Module,
            Backend::Lua => BackendChoice::Lua,
        }
    }
}
