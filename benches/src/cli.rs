//! One subcommand's options parsed on their own, by the subcommand's own
//! definition: how `tsbench compare` builds each step (exactly `tsbench
//! NAME WORDS…`), and how each subcommand's tests check its options
//! ([`FromWords`]).

use std::ffi::OsString;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Invocation<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

/// `words` (without a program name) parsed as `T`'s options.
pub(crate) fn parse<T, I, W>(words: I) -> Result<T, clap::Error>
where
    T: clap::Args,
    I: IntoIterator<Item = W>,
    W: Into<OsString> + Clone,
{
    Invocation::<T>::try_parse_from(words).map(|i| i.args)
}

/// For the subcommands' tests: `NowArgs::from_words(&["--count", "5"])`.
#[cfg(test)]
pub(crate) trait FromWords: clap::Args + Sized {
    /// `words` (without a program name) parsed as these options.
    fn from_words(words: &[&str]) -> Result<Self, clap::Error> {
        parse(words.iter().copied())
    }
}

#[cfg(test)]
impl<T: clap::Args> FromWords for T {}
