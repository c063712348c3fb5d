//! The app shell: session and client context, navbar, routes and route guards.

use api::Role;
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{
    NavigateOptions,
    components::{A, Route, Router, Routes},
    hooks::{use_location, use_navigate},
    path,
};

use crate::{
    api::{provide_api, use_api},
    components::{denied::AccessDenied, step_up::StepUpDialog},
    pages::{
        admin::AdminPage,
        boards::{AdminBoard, ModeratorBoard, UserBoard},
        email_links::{ConfirmEmail, ReportEmailChange, VerifyEmail},
        home::Home,
        login::Login,
        not_found::NotFound,
        profile::ProfilePage,
        recovery::{ForgotPassword, ResetPassword},
        register::Register,
    },
    session::{Session, use_session},
};

#[component]
pub fn App() -> impl IntoView {
    let session = Session::new();
    provide_context(session);
    provide_api(session);
    let api = use_api();
    spawn_local(async move { api.restore().await });

    view! {
        <Router>
            <Nav/>
            <main id="main">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=Home/>
                    <Route path=path!("/login") view=Login/>
                    <Route path=path!("/register") view=Register/>
                    <Route path=path!("/forgot-password") view=ForgotPassword/>
                    <Route path=path!("/reset-password") view=ResetPassword/>
                    <Route path=path!("/verify-email") view=VerifyEmail/>
                    <Route path=path!("/confirm-email") view=ConfirmEmail/>
                    <Route path=path!("/report-email-change") view=ReportEmailChange/>
                    <Route path=path!("/profile") view=|| view! { <Guard><ProfilePage/></Guard> }/>
                    <Route path=path!("/user") view=|| view! { <Guard><UserBoard/></Guard> }/>
                    <Route
                        path=path!("/mod")
                        view=|| view! { <Guard role=Role::Moderator><ModeratorBoard/></Guard> }
                    />
                    <Route
                        path=path!("/admin")
                        view=|| view! { <Guard role=Role::Admin><AdminBoard/></Guard> }
                    />
                    <Route
                        path=path!("/admin/users")
                        view=|| view! { <Guard role=Role::Admin><AdminPage/></Guard> }
                    />
                </Routes>
            </main>
            <StepUpDialog/>
        </Router>
    }
}

#[component]
fn Nav() -> impl IntoView {
    let session = use_session();
    let api = use_api();
    let navigate = use_navigate();
    let logout = move |_| {
        let navigate = navigate.clone();
        // Leave the page first, so its guard does not turn the logout into "log in to return here".
        navigate("/login", NavigateOptions::default());
        spawn_local(async move { api.logout().await });
    };
    view! {
        <header class="topbar">
            <nav aria-label="Main">
                <A href="/" attr:class="brand">"Tollgate"</A>
                <A href="/" exact=true>"Home"</A>
                <Show when=move || session.has_role(Role::Moderator)>
                    <A href="/mod" exact=true>"Moderator board"</A>
                </Show>
                <Show when=move || session.has_role(Role::Admin)>
                    <A href="/admin" exact=true>"Admin board"</A>
                    <A href="/admin/users" exact=true>"Admin"</A>
                </Show>
                <Show when=move || session.signed_in()>
                    <A href="/user" exact=true>"User board"</A>
                </Show>
                <span class="spacer"></span>
                <Show
                    when=move || session.signed_in()
                    fallback=move || {
                        view! {
                            <Show when=move || session.ready.get()>
                                <A href="/login" exact=true>"Login"</A>
                                <A href="/register" exact=true attr:class="button">"Sign up"</A>
                            </Show>
                        }
                    }
                >
                    <A href="/profile" exact=true attr:id="nav-profile">
                        {move || session.user.with(|u| u.as_ref().map(|u| u.username.clone()))}
                    </A>
                    <button type="button" class="link" id="logout" on:click=logout.clone()>
                        "Logout"
                    </button>
                </Show>
            </nav>
        </header>
    }
}

/// Shows `children` to a signed-in user (with `role`, if given). A signed-out visitor goes to
/// the login page, which brings them back here; a user without the role sees "access denied".
/// The server stays the authority: this only spares the user a useless page.
#[component]
fn Guard(#[prop(optional)] role: Option<Role>, children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    let location = use_location();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if session.ready.get() && !session.signed_in() {
            let path = location.pathname.get_untracked();
            if path == "/login" {
                return;
            }
            let here = format!("{path}{}", location.search.get_untracked());
            let target = String::from(js_sys::encode_uri_component(&here));
            navigate(
                &format!("/login?redirect={target}"),
                NavigateOptions {
                    replace: true,
                    ..Default::default()
                },
            );
        }
    });
    // A memo, so that the page is rebuilt only when the verdict changes, not whenever the
    // profile is reloaded (which would reset the page's forms).
    let verdict = Memo::new(move |_| {
        if !session.ready.get() {
            Verdict::Loading
        } else if !session.signed_in() {
            Verdict::SignedOut
        } else if role.is_some_and(|role| !session.has_role(role)) {
            Verdict::Denied
        } else {
            Verdict::Allowed
        }
    });
    move || match verdict.get() {
        Verdict::Loading => view! { <p class="loading" role="status">"Loading…"</p> }.into_any(),
        Verdict::SignedOut => ().into_any(),
        Verdict::Denied => view! { <AccessDenied/> }.into_any(),
        Verdict::Allowed => children().into_any(),
    }
}

/// What a [`Guard`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Loading,
    SignedOut,
    Denied,
    Allowed,
}
