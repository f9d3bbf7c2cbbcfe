//! What `#[mcache]` writes: the function's body moved to `<fn>_uncached`, a companion
//! `<fn>_cache()` that owns the cache (a `static`, made on first use), and the function
//! itself, which builds the key and asks the cache (`get_or_insert_if`, or for an
//! `async fn` `get_or_insert_async`: single flight per key, recursion-safe).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ImplItemFn, ReturnType, Type};

use crate::keys::{is_receiver, key_part};
use crate::options::Options;

fn err(span: impl quote::ToTokens, message: &str) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

/// Whether `ty` is `Result<..>` / `Option<..>` (by its last path segment).
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

pub(crate) fn memory(o: Options, f: ImplItemFn) -> syn::Result<TokenStream> {
    let sig = &f.sig;
    if let Some(p) = sig.generics.type_params().next() {
        return Err(err(
            p,
            "#[mcache] cannot cache a generic function (its cache is one `static`, of one type): \
             cache a non-generic function that this one calls",
        ));
    }
    if let Some(p) = sig.generics.const_params().next() {
        return Err(err(
            p,
            "#[mcache] cannot cache a function with const generics",
        ));
    }
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(err(
            sig,
            "#[mcache]: this function returns nothing to cache",
        ));
    };
    if let Some(recv) = sig.receiver() {
        if recv.mutability.is_some() || recv.reference.is_none() {
            return Err(err(
                recv,
                "#[mcache] caches methods that take `&self` (the receiver is not part of the key)",
            ));
        }
    }

    let name = &sig.ident;
    let vis = &f.vis;
    let cache_fn = format_ident!("{}_cache", name);
    let uncached_fn = format_ident!("{}_uncached", name);
    let is_method = sig.receiver().is_some();

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
            parts.push(key_part(typed)?);
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

    let keep = match last_segment(ret).as_deref() {
        Some("Result") if !o.cache_err => quote!(|v: &#ret| v.is_ok()),
        Some("Option") if !o.cache_none => quote!(|v: &#ret| v.is_some()),
        _ => quote!(|_: &#ret| true),
    };
    let max_size = o.max_size.iter();
    let ttl = o.ttl.iter();
    let policy = o.policy.iter();
    let is_async = sig.asyncness.is_some();
    let (cache_path, call) = if is_method {
        (
            quote!(Self::#cache_fn()),
            quote!(self.#uncached_fn(#(#arg_names),*)),
        )
    } else {
        (quote!(#cache_fn()), quote!(#uncached_fn(#(#arg_names),*)))
    };

    let lookup = if is_async {
        quote!(#cache_path.get_or_insert_async(key, || #call, #keep).await)
    } else {
        quote!(#cache_path.get_or_insert_if(key, || #call, #keep))
    };
    let attrs = &f.attrs;
    let block = &f.block;
    let mut uncached_sig = sig.clone();
    uncached_sig.ident = uncached_fn.clone();
    let cache_doc = format!("The cache of [`{name}`]: its counters, `clear`, `remove`, `insert`.");
    let uncached_doc = format!("[`{name}`] without its cache: the body, run every time.");

    Ok(quote! {
        #[doc = #cache_doc]
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

        #[doc = #uncached_doc]
        #[allow(dead_code)]
        #vis #uncached_sig #block

        #(#attrs)*
        #vis #sig {
            let key: #key_ty = #key_expr;
            #lookup
        }
    })
}
