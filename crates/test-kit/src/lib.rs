//! Test oracles and fixtures for jobmesh's map-reduce tests and benchmarks.
//!
//! Dev-only and unpublished: the root package's tests and benches and
//! job-node's process tests take it as a dev-dependency; no library crate
//! depends on it.
//!
//! - [`generate_corpus`] / [`generate_inputs`]: deterministic Zipf-like text
//!   ([`CorpusConfig`]; SplitMix64, so equal settings give byte-identical
//!   output everywhere, forever);
//! - [`reference_word_count`] / [`reference_inverted_index`]: straightforward
//!   single-threaded implementations, written independently of job-queue's
//!   tokenizer, that distributed results are compared with (and the
//!   benchmark's baseline);
//! - [`top_words`]: the K most frequent words of a count.
//!
//! # Example
//!
//! ```
//! use test_kit::{generate_inputs, reference_word_count, top_words, CorpusConfig};
//!
//! let inputs = generate_inputs(&CorpusConfig { bytes: 10_000, ..CorpusConfig::default() }, 2);
//! let counts = reference_word_count(&inputs);
//! let top = top_words(&counts, 3);
//! assert!(top[0].1 >= top[1].1 && top[1].1 >= top[2].1);
//! ```

mod corpus;
mod reference;

pub use corpus::{generate_corpus, generate_inputs, CorpusConfig};
pub use reference::{reference_inverted_index, reference_word_count, top_words};
