//! The options of `#[mcache(...)]`, checked at compile time: an unknown one, or a value
//! of the wrong kind, is an error that points at it and says what is accepted.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, Meta, Token};

/// The eviction policies, as `policy = "..."` names them.
const POLICIES: [(&str, &str); 5] = [
    ("lru", "Lru"),
    ("lfu", "Lfu"),
    ("fifo", "Fifo"),
    ("rr", "Rr"),
    ("tinylfu", "TinyLfu"),
];

pub(crate) struct Options {
    pub max_size: Option<Expr>,
    /// Seconds, as a literal.
    pub ttl: Option<Expr>,
    /// The `Policy` variant.
    pub policy: Option<syn::Ident>,
    pub key: Option<Expr>,
    pub key_type: Option<syn::Type>,
    pub cache_err: bool,
    pub cache_none: bool,
}

fn err(span: impl quote::ToTokens, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

impl Options {
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Options> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
        let mut o = Options {
            max_size: None,
            ttl: None,
            policy: None,
            key: None,
            key_type: None,
            cache_err: false,
            cache_none: false,
        };
        for meta in metas {
            let name = meta
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match (name.as_str(), &meta) {
                ("cache_err", Meta::Path(_)) => o.cache_err = true,
                ("cache_none", Meta::Path(_)) => o.cache_none = true,
                ("max_size", Meta::NameValue(nv)) => match &nv.value {
                    Expr::Lit(l) if matches!(l.lit, Lit::Int(_)) => o.max_size = Some(nv.value.clone()),
                    v => return Err(err(v, "max_size: expected a number of entries, like `max_size = 1_000`")),
                },
                ("ttl", Meta::NameValue(nv)) => match &nv.value {
                    Expr::Lit(l) if matches!(l.lit, Lit::Int(_) | Lit::Float(_)) => o.ttl = Some(nv.value.clone()),
                    v => return Err(err(v, "ttl: expected a number of seconds, like `ttl = 60` or `ttl = 0.5`")),
                },
                ("policy", Meta::NameValue(nv)) => {
                    let named = match &nv.value {
                        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
                        _ => None,
                    };
                    let variant = named
                        .as_deref()
                        .and_then(|n| POLICIES.iter().find(|(p, _)| *p == n))
                        .map(|(_, v)| syn::Ident::new(v, proc_macro2::Span::call_site()));
                    match variant {
                        Some(v) => o.policy = Some(v),
                        None => {
                            return Err(err(
                                &nv.value,
                                "policy: expected \"lru\", \"lfu\", \"fifo\", \"rr\" or \"tinylfu\"",
                            ))
                        }
                    }
                }
                ("key", Meta::NameValue(nv)) => o.key = Some(nv.value.clone()),
                ("key_type", Meta::NameValue(nv)) => {
                    let ty = match &nv.value {
                        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => s.parse::<syn::Type>()?,
                        other => syn::parse2::<syn::Type>(quote::quote!(#other))?,
                    };
                    o.key_type = Some(ty);
                }
                _ => {
                    return Err(err(
                        &meta,
                        format!(
                            "unknown option `{}`: expected max_size = N, ttl = SECONDS, policy = \"...\", \
                             key = EXPR with key_type = TYPE, cache_err or cache_none",
                            if name.is_empty() { quote::quote!(#meta).to_string() } else { name }
                        ),
                    ))
                }
            }
        }
        if o.key.is_some() != o.key_type.is_some() {
            let at = o
                .key
                .as_ref()
                .map(|k| quote::quote!(#k))
                .unwrap_or_else(|| {
                    let t = o.key_type.as_ref();
                    quote::quote!(#t)
                });
            return Err(err(
                at,
                "key = EXPR needs key_type = TYPE beside it (the cache's key type is written in \
                 a static), and key_type needs key",
            ));
        }
        Ok(o)
    }
}
