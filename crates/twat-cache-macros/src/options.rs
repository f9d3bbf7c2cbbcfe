//! The options of `#[mcache(...)]` and `#[bcache(...)]`, checked at compile time: an
//! unknown one, or a value of the wrong kind, is an error that points at it and says
//! what is accepted.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, LitStr, Meta, Token};

/// Which attribute the options belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Memory,
    Disk,
}

impl Engine {
    fn policies(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Engine::Memory => &[
                ("lru", "Lru"),
                ("lfu", "Lfu"),
                ("fifo", "Fifo"),
                ("rr", "Rr"),
                ("tinylfu", "TinyLfu"),
            ],
            Engine::Disk => &[("lru", "Lru"), ("lfu", "Lfu"), ("fifo", "Fifo")],
        }
    }

    fn accepted(self) -> &'static str {
        match self {
            Engine::Memory => {
                "max_size = N, ttl = SECONDS, policy = \"...\", key = EXPR with key_type = TYPE, cache_err \
                 or cache_none"
            }
            Engine::Disk => {
                "dir = \"...\", name = \"...\", ttl = SECONDS, max_bytes = N, policy = \"...\", version = \
                 \"...\", key = EXPR with key_type = TYPE, cache_err or cache_none"
            }
        }
    }
}

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
    pub dir: Option<LitStr>,
    pub name: Option<LitStr>,
    pub version: Option<LitStr>,
    pub max_bytes: Option<Expr>,
}

fn err(span: impl quote::ToTokens, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

fn int(value: &Expr, what: &str) -> syn::Result<Expr> {
    match value {
        Expr::Lit(l) if matches!(l.lit, Lit::Int(_)) => Ok(value.clone()),
        v => Err(err(v, what)),
    }
}

fn text(value: &Expr, what: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        v => Err(err(v, what)),
    }
}

impl Options {
    pub(crate) fn parse(attr: TokenStream, engine: Engine) -> syn::Result<Options> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
        let mut o = Options {
            max_size: None,
            ttl: None,
            policy: None,
            key: None,
            key_type: None,
            cache_err: false,
            cache_none: false,
            dir: None,
            name: None,
            version: None,
            max_bytes: None,
        };
        let memory = engine == Engine::Memory;
        for meta in metas {
            let name = meta
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match (name.as_str(), &meta) {
                ("cache_err", Meta::Path(_)) => o.cache_err = true,
                ("cache_none", Meta::Path(_)) => o.cache_none = true,
                ("max_size", Meta::NameValue(nv)) if memory => {
                    o.max_size = Some(int(&nv.value, "max_size: expected a number of entries, like `max_size = 1_000`")?)
                }
                ("max_bytes", Meta::NameValue(nv)) if !memory => {
                    o.max_bytes = Some(int(&nv.value, "max_bytes: expected a number of bytes, like `max_bytes = 1 << 30`")
                        .or_else(|_| match &nv.value {
                            Expr::Binary(_) => Ok(nv.value.clone()),
                            v => Err(err(v, "max_bytes: expected a number of bytes, like `max_bytes = 1 << 30`")),
                        })?)
                }
                ("ttl", Meta::NameValue(nv)) => match &nv.value {
                    Expr::Lit(l) if matches!(l.lit, Lit::Int(_) | Lit::Float(_)) => o.ttl = Some(nv.value.clone()),
                    v => return Err(err(v, "ttl: expected a number of seconds, like `ttl = 60` or `ttl = 0.5`")),
                },
                ("policy", Meta::NameValue(nv)) => {
                    let named = text(&nv.value, "").ok().map(|s| s.value());
                    let variant = named
                        .as_deref()
                        .and_then(|n| engine.policies().iter().find(|(p, _)| *p == n))
                        .map(|(_, v)| syn::Ident::new(v, proc_macro2::Span::call_site()));
                    let names: Vec<String> = engine.policies().iter().map(|(p, _)| format!("\"{p}\"")).collect();
                    match variant {
                        Some(v) => o.policy = Some(v),
                        None => return Err(err(&nv.value, format!("policy: expected {}", names.join(", ")))),
                    }
                }
                ("dir", Meta::NameValue(nv)) if !memory => {
                    o.dir = Some(text(&nv.value, "dir: expected a folder, like `dir = \"geocoder\"` (relative: under the cache directory)")?)
                }
                ("name", Meta::NameValue(nv)) if !memory => {
                    o.name = Some(text(&nv.value, "name: expected the cache's name in its folder, like `name = \"app.geocode\"`")?)
                }
                ("version", Meta::NameValue(nv)) if !memory => {
                    o.version = Some(text(&nv.value, "version: expected a string, like `version = \"2\"`")?)
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
                    let shown = if name.is_empty() { quote::quote!(#meta).to_string() } else { name };
                    return Err(err(&meta, format!("unknown option `{shown}`: expected {}", engine.accepted())));
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
                "key = EXPR needs key_type = TYPE beside it (the cache's key type is written in a static), \
                 and key_type needs key",
            ));
        }
        Ok(o)
    }
}
