//! `baton config show|path`.

use crate::cli::ConfigCommand;
use crate::commands::print_json;
use baton_runtime::{Config, Paths, DEFAULT_CONFIG_TOML};

/// Runs a config command.
pub fn run(cmd: ConfigCommand, paths: &Paths, json: bool) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show { defaults } => {
            let config = if defaults {
                Config::default()
            } else {
                Config::load(&paths.config_file)?
            };
            if json {
                print_json(&config)
            } else if defaults {
                print!("{DEFAULT_CONFIG_TOML}");
                Ok(())
            } else {
                println!(
                    "# effective configuration (file: {})",
                    paths.config_file.display()
                );
                print!("{}", config.to_toml());
                Ok(())
            }
        }
        ConfigCommand::Path => {
            if json {
                return print_json(paths);
            }
            let exists = if paths.config_file.exists() {
                ""
            } else {
                " (not created; defaults apply)"
            };
            println!("config file: {}{exists}", paths.config_file.display());
            println!("data dir:    {}", paths.data_dir.display());
            println!("models dir:  {}", paths.models_dir.display());
            println!("log dir:     {}", paths.log_dir().display());
            Ok(())
        }
    }
}
