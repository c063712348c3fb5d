//! What the audit log records: kinds of events and the event itself. Plain data, no SQL and no
//! HTTP: the domain decides what is audited, the storage keeps it, the admin API shows it.

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Signup,
    SigninOk,
    SigninFailed,
    RefreshReuseDetected,
    Logout,
    SessionRevoked,
    PasswordChanged,
    RolesChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    ClientAdded,
    ClientRemoved,
    PasswordResetRequested,
    PasswordReset,
    PasswordSetByAdmin,
    EmailVerified,
    EmailChangeRequested,
    EmailChanged,
    EmailChangeReported,
    MailFailed,
    MfaEnrolled,
    MfaRemoved,
    MfaFailed,
    MfaReset,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
}

impl AuditKind {
    pub const ALL: [AuditKind; 27] = [
        AuditKind::Signup,
        AuditKind::SigninOk,
        AuditKind::SigninFailed,
        AuditKind::RefreshReuseDetected,
        AuditKind::Logout,
        AuditKind::SessionRevoked,
        AuditKind::PasswordChanged,
        AuditKind::RolesChanged,
        AuditKind::UserDisabled,
        AuditKind::UserEnabled,
        AuditKind::UserDeleted,
        AuditKind::ClientAdded,
        AuditKind::ClientRemoved,
        AuditKind::PasswordResetRequested,
        AuditKind::PasswordReset,
        AuditKind::PasswordSetByAdmin,
        AuditKind::EmailVerified,
        AuditKind::EmailChangeRequested,
        AuditKind::EmailChanged,
        AuditKind::EmailChangeReported,
        AuditKind::MailFailed,
        AuditKind::MfaEnrolled,
        AuditKind::MfaRemoved,
        AuditKind::MfaFailed,
        AuditKind::MfaReset,
        AuditKind::RecoveryCodesRegenerated,
        AuditKind::RecoveryCodeUsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Signup => "signup",
            AuditKind::SigninOk => "signin_ok",
            AuditKind::SigninFailed => "signin_failed",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::Logout => "logout",
            AuditKind::SessionRevoked => "session_revoked",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::RolesChanged => "roles_changed",
            AuditKind::UserDisabled => "user_disabled",
            AuditKind::UserEnabled => "user_enabled",
            AuditKind::UserDeleted => "user_deleted",
            AuditKind::ClientAdded => "client_added",
            AuditKind::ClientRemoved => "client_removed",
            AuditKind::PasswordResetRequested => "password_reset_requested",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::PasswordSetByAdmin => "password_set_by_admin",
            AuditKind::EmailVerified => "email_verified",
            AuditKind::EmailChangeRequested => "email_change_requested",
            AuditKind::EmailChanged => "email_changed",
            AuditKind::EmailChangeReported => "email_change_reported",
            AuditKind::MailFailed => "mail_failed",
            AuditKind::MfaEnrolled => "mfa_enrolled",
            AuditKind::MfaRemoved => "mfa_removed",
            AuditKind::MfaFailed => "mfa_failed",
            AuditKind::MfaReset => "mfa_reset",
            AuditKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: AuditKind,
    /// Whom it is about.
    pub user_id: Option<i64>,
    /// Who did it, when not the user themself (an admin).
    pub actor_id: Option<i64>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, user_id: Option<i64>) -> Self {
        Self {
            kind,
            user_id,
            actor_id: None,
            session_id: None,
            ip: None,
            detail: None,
        }
    }
}
