// The diesel view of the tables in migrations/. Kept by hand: both backends share it.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        sending_enabled -> Bool,
        fallback_policy -> Text,
        shared_pool_allowed -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        unsubscribe_by_default -> Bool,
        sending_defaults -> Nullable<Text>,
    }
}

diesel::table! {
    domain_claims (id) {
        id -> Text,
        tenant_id -> Text,
        domain -> Text,
        token -> Text,
        record_name -> Text,
        state -> Text,
        created_at -> BigInt,
        verified_at -> Nullable<BigInt>,
        lapsed_at -> Nullable<BigInt>,
        last_checked_at -> Nullable<BigInt>,
        next_check_at -> Nullable<BigInt>,
        misses -> Integer,
        temp_failures -> Integer,
        last_check -> Nullable<Text>,
        health -> Nullable<Text>,
        health_next_at -> Nullable<BigInt>,
        dkim_selectors -> Nullable<Text>,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        sending_enabled -> Bool,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        tenant_id -> Text,
        email -> Text,
        name -> Text,
        role -> Text,
        team_id -> Nullable<Text>,
        disabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        tenant_id -> Text,
        user_id -> Text,
        token_hash -> Binary,
        label -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    operator_tokens (id) {
        id -> Text,
        token_hash -> Binary,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    tenant_keys (tenant_id, version) {
        tenant_id -> Text,
        version -> BigInt,
        master_key_id -> Text,
        wrapped -> Binary,
        created_at -> BigInt,
        rewrapped_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    secrets (tenant_id, owner_id, field) {
        tenant_id -> Text,
        owner_id -> Text,
        field -> Text,
        sealed -> Binary,
        key_version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    channels (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        kind -> Text,
        owner_user_id -> Nullable<Text>,
        owner_team_id -> Nullable<Text>,
        owner_tenant -> Bool,
        scope -> Text,
        from_address -> Nullable<Text>,
        settings -> Text,
        provider -> Nullable<Text>,
        status -> Text,
        status_cause -> Nullable<Text>,
        credential_updated_at -> Nullable<BigInt>,
        last_verified_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        failure_count -> BigInt,
        first_failure_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<BigInt>,
        status_changed_at -> Nullable<BigInt>,
        next_check_at -> Nullable<BigInt>,
        paused_until -> Nullable<BigInt>,
        bounce_window_from -> Nullable<BigInt>,
        pause_detail -> Nullable<Text>,
    }
}

diesel::table! {
    channel_domains (channel_id, domain) {
        channel_id -> Text,
        tenant_id -> Text,
        domain -> Text,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        tenant_id -> Text,
        sender_user_id -> Text,
        idempotency_key -> Nullable<Text>,
        message_id_header -> Text,
        from_address -> Text,
        from_email -> Text,
        recipient_count -> BigInt,
        subject -> Text,
        envelope -> Text,
        body -> Nullable<Text>,
        size_bytes -> BigInt,
        status -> Text,
        hold_reason -> Nullable<Text>,
        channel_id -> Nullable<Text>,
        route -> Nullable<Text>,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        recipients -> Nullable<Text>,
        failed_recipients -> BigInt,
        personal_gmail -> BigInt,
        send_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    message_events (id) {
        id -> BigInt,
        message_id -> Text,
        at -> BigInt,
        kind -> Text,
        detail -> Text,
    }
}

diesel::table! {
    channel_usage (channel_id, minute) {
        channel_id -> Text,
        minute -> BigInt,
        messages -> BigInt,
        recipients -> BigInt,
    }
}

diesel::table! {
    oauth_states (id) {
        id -> Text,
        state_hash -> Binary,
        tenant_id -> Text,
        user_id -> Text,
        provider -> Text,
        channel_id -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        return_to -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_tokens (channel_id) {
        channel_id -> Text,
        tenant_id -> Text,
        provider -> Text,
        subject -> Text,
        scopes -> Text,
        access_expires_at -> Nullable<BigInt>,
        version -> BigInt,
        refresh_lease_owner -> Nullable<Text>,
        refresh_lease_until -> Nullable<BigInt>,
        updated_at -> BigInt,
        account_tenant -> Nullable<Text>,
        access_resource -> Nullable<Text>,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        tenant_id -> Text,
        url -> Text,
        events -> Text,
        description -> Nullable<Text>,
        enabled -> Bool,
        created_by -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        tenant_id -> Text,
        event_id -> Text,
        event_type -> Text,
        kind -> Text,
        webhook_id -> Nullable<Text>,
        recipient -> Nullable<Text>,
        payload -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        last_status_code -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        delivered_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    notification_marks (tenant_id, mark) {
        tenant_id -> Text,
        mark -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    channel_daily_stats (tenant_id, channel_id, day) {
        tenant_id -> Text,
        channel_id -> Text,
        day -> BigInt,
        sent -> BigInt,
        deferred -> BigInt,
        held -> BigInt,
        failed -> BigInt,
        recipients -> BigInt,
        hard_bounces -> BigInt,
    }
}

diesel::joinable!(message_events -> messages (message_id));

diesel::table! {
    ui_sessions (id) {
        id -> Text,
        session_hash -> Binary,
        tenant_id -> Text,
        user_id -> Text,
        token_id -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    processes (id) {
        id -> Text,
        hostname -> Text,
        pid -> BigInt,
        pid_scope -> Nullable<Text>,
        started_at -> BigInt,
        heartbeat_at -> BigInt,
        found_dead_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    suppressions (tenant_id, address) {
        tenant_id -> Text,
        address -> Text,
        reason -> Text,
        message_id -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    unsubscribe_tokens (token_hash) {
        token_hash -> Binary,
        tenant_id -> Text,
        address -> Text,
        message_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    dkim_keys (id) {
        id -> Text,
        tenant_id -> Text,
        domain -> Text,
        selector -> Text,
        algorithm -> Text,
        public_key -> Binary,
        state -> Text,
        created_at -> BigInt,
        retiring_since -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
        activated_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    channel_domain_health (tenant_id, channel_id, domain) {
        tenant_id -> Text,
        channel_id -> Text,
        domain -> Text,
        checks -> Text,
        checked_at -> BigInt,
    }
}

diesel::table! {
    tenant_bounce_pause (tenant_id) {
        tenant_id -> Text,
        threshold_basis_points -> BigInt,
        min_sends -> BigInt,
        window_days -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    channel_daily_stats,
    tenants,
    domain_claims,
    teams,
    users,
    api_tokens,
    ui_sessions,
    operator_tokens,
    tenant_keys,
    secrets,
    audit_events,
    channels,
    channel_domains,
    messages,
    message_events,
    channel_usage,
    oauth_states,
    oauth_tokens,
    webhooks,
    notifications,
    notification_marks,
    processes,
    suppressions,
    unsubscribe_tokens,
    dkim_keys,
    channel_domain_health,
    tenant_bounce_pause,
    channel_pacing
);

diesel::table! {
    channel_pacing (channel_id) {
        channel_id -> Text,
        next_send_after -> BigInt,
    }
}
