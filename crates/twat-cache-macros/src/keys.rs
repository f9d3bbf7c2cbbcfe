//! The key of a call: each argument, owned (`&str` becomes `String`, `&[T]` becomes
//! `Vec<T>`, `&T` becomes `T`, cloned), in a tuple. What cannot be keyed is a compile
//! error that points at the argument and says what to do instead.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, Pat, Type};

/// One argument's part of the key: its owned type, and how to make it from the argument.
pub(crate) struct KeyPart {
    pub ty: Type,
    pub make: TokenStream,
}

fn err(span: impl quote::ToTokens, message: &str) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

/// The key part of a typed argument (the receiver is never part of the key).
pub(crate) fn key_part(arg: &syn::PatType, macro_name: &str) -> syn::Result<KeyPart> {
    let Pat::Ident(pat) = &*arg.pat else {
        return Err(err(
            &arg.pat,
            &format!(
                "#[{macro_name}] keys arguments by name: bind this one to a plain name (and destructure it \
                 in the body)"
            ),
        ));
    };
    let name = &pat.ident;
    owned(&arg.ty, quote!(#name))
}

fn owned(ty: &Type, value: TokenStream) -> syn::Result<KeyPart> {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => Err(err(
            ty,
            "a `&mut` argument cannot be part of a key: take it by `&` or by value, or give `key = ...` \
             and `key_type = ...`",
        )),
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => Ok(KeyPart {
                ty: syn::parse_quote!(::std::string::String),
                make: quote!(::std::borrow::ToOwned::to_owned(#value)),
            }),
            Type::Slice(s) => {
                let elem = &s.elem;
                Ok(KeyPart {
                    ty: syn::parse_quote!(::std::vec::Vec<#elem>),
                    make: quote!(<[#elem]>::to_vec(#value)),
                })
            }
            Type::ImplTrait(_) | Type::TraitObject(_) => Err(unkeyable(ty)),
            elem => Ok(KeyPart {
                ty: strip_lifetimes(elem)?,
                make: quote!(::std::clone::Clone::clone(#value)),
            }),
        },
        Type::ImplTrait(_) | Type::TraitObject(_) | Type::Infer(_) => Err(unkeyable(ty)),
        _ => Ok(KeyPart {
            ty: strip_lifetimes(ty)?,
            make: quote!(::std::clone::Clone::clone(&#value)),
        }),
    }
}

fn unkeyable(ty: &Type) -> syn::Error {
    err(
        ty,
        "an `impl Trait` or `dyn Trait` argument has no type a key can be made of: name a concrete type, \
         or give `key = ...` and `key_type = ...`",
    )
}

/// The key is kept in a `static`: it may not borrow (`&'a T` inside a type is refused).
fn strip_lifetimes(ty: &Type) -> syn::Result<Type> {
    let text = quote!(#ty).to_string();
    if text.contains('\'') || text.contains('&') {
        return Err(err(
            ty,
            "a key cannot hold a reference (it outlives the call): take an owned type, or give `key = ...` \
             and `key_type = ...`",
        ));
    }
    Ok(ty.clone())
}

/// The receiver of a method, if any: left out of the key.
pub(crate) fn is_receiver(arg: &FnArg) -> bool {
    matches!(arg, FnArg::Receiver(_))
}
