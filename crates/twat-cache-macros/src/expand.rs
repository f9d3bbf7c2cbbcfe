//! What `#[mcache]` and `#[bcache]` write: the function's body moved to
//! `<fn>_uncached`, a companion `<fn>_cache()` that owns the cache (a `static`, made on
//! first use), and the function itself, which builds the key and asks the cache.
//!
//! - `#[mcache]`: a `MemoryCache`; `get_or_insert_if` (or, for an `async fn`,
//!   `get_or_insert_async`): single flight per key, recursion-safe.
//! - `#[bcache]`: a `DiskCache` in a folder; a folder that cannot be opened makes the
//!   companion return `None` and the function run uncached.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, GenericArgument, ImplItemFn, PathArguments, ReturnType, Type};

use crate::keys::{is_receiver, key_part};
use crate::options::Options;

fn err(span: impl quote::ToTokens, message: &str) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

/// `Result`/`Option` (by the last path segment), and its first type argument.
fn wrapper(ty: &Type) -> Option<(String, Type)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let first = args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })?;
    Some((last.ident.to_string(), first))
}

/// What both engines need from the function.
struct Prepared {
    ret: Type,
    key_ty: TokenStream,
    key_expr: TokenStream,
    cache_fn: syn::Ident,
    cache_path: TokenStream,
    call: TokenStream,
    uncached: TokenStream,
}

impl Prepared {
    /// The expansion shared by every engine: the cache's `accessor` function, the
    /// uncached body, and the function itself, which builds its key and runs `lookup`.
    fn emit(&self, f: &ImplItemFn, accessor: TokenStream, lookup: TokenStream) -> TokenStream {
        let Prepared {
            key_ty,
            key_expr,
            uncached,
            ..
        } = self;
        let (attrs, vis, sig) = (&f.attrs, &f.vis, &f.sig);
        quote! {
            #accessor

            #uncached

            #(#attrs)*
            #vis #sig {
                let key: #key_ty = #key_expr;
                #lookup
            }
        }
    }
}

fn prepare(o: &Options, f: &ImplItemFn, macro_name: &str) -> syn::Result<Prepared> {
    let sig = &f.sig;
    if let Some(p) = sig.generics.type_params().next() {
        return Err(err(
            p,
            &format!(
                "#[{macro_name}] cannot cache a generic function (its cache is one `static`, of one \
                 type): cache a non-generic function that this one calls"
            ),
        ));
    }
    if let Some(p) = sig.generics.const_params().next() {
        return Err(err(
            p,
            &format!("#[{macro_name}] cannot cache a function with const generics"),
        ));
    }
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(err(
            sig,
            &format!("#[{macro_name}]: this function returns nothing to cache"),
        ));
    };
    if let Some(recv) = sig.receiver() {
        if recv.mutability.is_some() || recv.reference.is_none() {
            return Err(err(
                recv,
                &format!("#[{macro_name}] caches methods that take `&self` (the receiver is not part of the key)"),
            ));
        }
    }
    let name = &sig.ident;
    let cache_fn = format_ident!("{}_cache", name);
    let uncached_fn = format_ident!("{}_uncached", name);
    let mut parts = Vec::new();
    let mut arg_names = Vec::new();
    for arg in &sig.inputs {
        if is_receiver(arg) {
            continue;
        }
        let FnArg::Typed(typed) = arg else { continue };
        if let syn::Pat::Ident(p) = &*typed.pat {
            arg_names.push(p.ident.clone());
        }
        if o.key.is_none() {
            parts.push(key_part(typed, macro_name)?);
        }
    }
    let (key_ty, key_expr) = match (&o.key, &o.key_type) {
        (Some(k), Some(t)) => (quote!(#t), quote!(#k)),
        _ => {
            let tys = parts.iter().map(|p| &p.ty);
            let makes = parts.iter().map(|p| &p.make);
            (quote!((#(#tys,)*)), quote!((#(#makes,)*)))
        }
    };
    let (cache_path, call) = if sig.receiver().is_some() {
        (
            quote!(Self::#cache_fn()),
            quote!(self.#uncached_fn(#(#arg_names),*)),
        )
    } else {
        (quote!(#cache_fn()), quote!(#uncached_fn(#(#arg_names),*)))
    };
    let mut uncached_sig = sig.clone();
    uncached_sig.ident = uncached_fn;
    let (vis, block) = (&f.vis, &f.block);
    let doc = format!("[`{name}`] without its cache: the body, run every time.");
    let uncached = quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis #uncached_sig #block
    };
    Ok(Prepared {
        ret: (**ret).clone(),
        key_ty,
        key_expr,
        cache_fn,
        cache_path,
        call,
        uncached,
    })
}

pub(crate) fn memory(o: Options, f: ImplItemFn) -> syn::Result<TokenStream> {
    let p = prepare(&o, &f, "mcache")?;
    let Prepared {
        ret,
        key_ty,
        cache_fn,
        cache_path,
        call,
        ..
    } = &p;
    let keep = match wrapper(ret) {
        Some((w, _)) if w == "Result" && !o.cache_err => quote!(|v: &#ret| v.is_ok()),
        Some((w, _)) if w == "Option" && !o.cache_none => quote!(|v: &#ret| v.is_some()),
        _ => quote!(|_: &#ret| true),
    };
    let max_size = o.max_size.iter();
    let ttl = o.ttl.iter();
    let policy = o.policy.iter();
    let lookup = if f.sig.asyncness.is_some() {
        quote!(#cache_path.get_or_insert_async(key, || #call, #keep).await)
    } else {
        quote!(#cache_path.get_or_insert_if(key, || #call, #keep))
    };
    let vis = &f.vis;
    let doc = format!(
        "The cache of [`{}`]: its counters, `clear`, `remove`, `insert`.",
        f.sig.ident
    );
    let accessor = quote! {
        #[doc = #doc]
        #[allow(dead_code)] // a convenience: unused by most programs
        #vis fn #cache_fn() -> &'static ::twat_cache::MemoryCache<#key_ty, #ret> {
            static CACHE: ::std::sync::LazyLock<::twat_cache::MemoryCache<#key_ty, #ret>> =
                ::std::sync::LazyLock::new(|| {
                    ::twat_cache::MemoryCache::builder()
                        #(.max_size(#max_size))*
                        #(.ttl(::std::time::Duration::from_secs_f64((#ttl) as f64)))*
                        #(.policy(::twat_cache::Policy::#policy))*
                        .build()
                        .expect("#[mcache] options are checked when the program is compiled")
                });
            &CACHE
        }
    };
    Ok(p.emit(&f, accessor, lookup))
}

/// FNV-1a of the function's tokens (not its formatting, nor its comments): the default
/// version, so editing the body starts afresh.
fn token_hash(f: &ImplItemFn) -> String {
    let (sig, block) = (&f.sig, &f.block);
    let text = quote!(#sig #block).to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub(crate) fn disk(o: Options, f: ImplItemFn) -> syn::Result<TokenStream> {
    if let Some(a) = &f.sig.asyncness {
        return Err(err(
            a,
            "#[bcache] reads and writes files: it does not take an `async fn` (cache the work in a plain \
             function and call it from `spawn_blocking`, or use #[mcache])",
        ));
    }
    let p = prepare(&o, &f, "bcache")?;
    let Prepared {
        ret,
        key_ty,
        cache_fn,
        cache_path,
        call,
        ..
    } = &p;
    // What is stored: the `Ok` of a `Result`, the `Some` of an `Option`, else the value.
    let (value_ty, kept, from_stored) = match wrapper(ret) {
        Some((w, t)) if w == "Result" && !o.cache_err => {
            (quote!(#t), quote!(|r: &#ret| r.as_ref().ok()), quote!(Ok))
        }
        Some((w, t)) if w == "Option" && !o.cache_none => {
            (quote!(#t), quote!(|r: &#ret| r.as_ref()), quote!(Some))
        }
        _ => (quote!(#ret), quote!(|r: &#ret| Some(r)), quote!(|v| v)),
    };
    let name = &f.sig.ident;
    let ns = match &o.name {
        Some(n) => quote!(#n),
        None => quote!(concat!(module_path!(), "::", stringify!(#name))),
    };
    let dir = match &o.dir {
        Some(d) => quote!(::std::string::String::from(#d)),
        None => quote!(#ns.replace("::", ".")),
    };
    let version = match &o.version {
        Some(v) => quote!(#v),
        None => {
            let h = token_hash(&f);
            quote!(#h)
        }
    };
    let ttl = o.ttl.iter();
    let max_bytes = o.max_bytes.iter();
    let policy = o.policy.iter();
    let vis = &f.vis;
    let doc = format!(
        "The folder cache of [`{name}`] (`None` when its folder cannot be opened: calls then run uncached)."
    );
    let accessor = quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis fn #cache_fn() -> ::std::option::Option<&'static ::twat_cache::DiskCache<#key_ty, #value_ty>> {
            static CACHE: ::std::sync::LazyLock<
                ::std::option::Option<::twat_cache::DiskCache<#key_ty, #value_ty>>,
            > = ::std::sync::LazyLock::new(|| {
                let dir: ::std::string::String = #dir;
                ::twat_cache::DiskCacheBuilder::in_cache_dir(&dir, #ns)
                    #(.ttl(::std::time::Duration::from_secs_f64((#ttl) as f64)))*
                    #(.max_bytes(#max_bytes))*
                    #(.policy(::twat_cache::Policy::#policy))*
                    .version(#version)
                    .open()
                    .ok()
            });
            CACHE.as_ref()
        }
    };
    let lookup = quote! {
        match #cache_path {
            ::std::option::Option::Some(cache) => cache.get_or_insert_if(&key, || #call, #kept, #from_stored),
            ::std::option::Option::None => #call,
        }
    };
    Ok(p.emit(&f, accessor, lookup))
}
