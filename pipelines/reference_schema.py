"""The reference schema: a 3D-printing cloud platform's tables as its privacy policy describes them.

It exists so that `lethe seed`, the demo and the reference policy (`policies/cloud3d.yaml`) agree
on one schema. The engine never imports it: Lethe works on any schema a policy names.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Integer keys: BIGINT on PostgreSQL (access logs outgrow 2^31 in production), INTEGER on SQLite,
# where only an `INTEGER PRIMARY KEY` is the fast rowid alias.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Text columns are unbounded so that `redact: {with: "[redacted]"}` and pseudonym tokens always fit.
accounts = sa.Table(
    "accounts", metadata,
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String, nullable=False),
    sa.Column("full_name", sa.String, nullable=False),
    sa.Column("phone", sa.String, nullable=True),
    sa.Column("password_hash", sa.String, nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("signup_ip", sa.String, nullable=True),
    sa.Column("signup_channel", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("deleted_at", sa.DateTime, nullable=True),
    sa.Index("ix_accounts_deleted_at", "deleted_at"),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=False),  # the team's owner
    sa.Column("team_name", sa.String, nullable=False),
    sa.Column("company", sa.String, nullable=True),
    sa.Column("email", sa.String, nullable=False),
    sa.Column("password_hash", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_teams_user_id", "user_id"),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("email", sa.String, nullable=False),
    sa.Column("shipping_address", sa.String, nullable=False),
    sa.Column("billing_address", sa.String, nullable=False),
    sa.Column("payment_token", sa.String, nullable=False),
    sa.Column("card_last4", sa.String, nullable=True),
    sa.Column("amount", sa.Numeric(10, 2), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_orders_user_id", "user_id"),
    sa.Index("ix_orders_created_at", "created_at"),
)

support_tickets = sa.Table(
    "support_tickets", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("email", sa.String, nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("printer_model", sa.String, nullable=False),
    sa.Column("serial_number", sa.String, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("closed_at", sa.DateTime, nullable=True),  # NULL while the ticket is open
    sa.Index("ix_support_tickets_user_id", "user_id"),
    sa.Index("ix_support_tickets_closed_at", "closed_at"),
)

newsletter_subscriptions = sa.Table(
    "newsletter_subscriptions", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=True),  # NULL: subscribed without an account
    sa.Column("email", sa.String, nullable=False),
    sa.Column("subscribed_at", sa.DateTime, nullable=False),
    sa.Column("unsubscribed_at", sa.DateTime, nullable=True),
    sa.Index("ix_newsletter_subscriptions_user_id", "user_id"),
    sa.Index("ix_newsletter_subscriptions_unsubscribed_at", "unsubscribed_at"),
)

feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=True),  # NULL: anonymous feedback form
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_feedback_user_id", "user_id"),
    sa.Index("ix_feedback_created_at", "created_at"),
)

uploaded_files = sa.Table(
    "uploaded_files", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("file_name", sa.String, nullable=False),
    sa.Column("storage_path", sa.String, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("uploaded_at", sa.DateTime, nullable=False),
    sa.Index("ix_uploaded_files_user_id", "user_id"),
    sa.Index("ix_uploaded_files_uploaded_at", "uploaded_at"),
)

access_logs = sa.Table(
    "access_logs", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=True),  # NULL: a visitor who was not logged in
    sa.Column("ip", sa.String, nullable=False),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("user_agent", sa.String, nullable=True),
    sa.Column("ts", sa.DateTime, nullable=False),
    sa.Index("ix_access_logs_user_id", "user_id"),
    sa.Index("ix_access_logs_ts", "ts"),
)

marketing_profiles = sa.Table(
    "marketing_profiles", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("segment", sa.String, nullable=False),
    sa.Column("interests", sa.String, nullable=True),
    sa.Column("ad_id", sa.String, nullable=True),  # advertising identifier of the user's device
    sa.Column("consent_given_at", sa.DateTime, nullable=False),
    sa.Column("consent_withdrawn_at", sa.DateTime, nullable=True),
    sa.Index("ix_marketing_profiles_user_id", "user_id"),
    sa.Index("ix_marketing_profiles_consent_withdrawn_at", "consent_withdrawn_at"),
)

# Column names fixed by the SPEC ("Legal holds table").
legal_holds = sa.Table(
    "legal_holds", metadata,
    sa.Column("hold_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("subject_id", sa.Integer, nullable=True),
    sa.Column("table_name", sa.String, nullable=True),
    sa.Column("record_key", sa.Text, nullable=True),
    sa.Column("case_ref", sa.String, nullable=False),
    sa.Column("placed_at", sa.DateTime, nullable=False),
    sa.Column("released_at", sa.DateTime, nullable=True),
)

TABLE_NAMES: tuple[str, ...] = tuple(metadata.tables)
