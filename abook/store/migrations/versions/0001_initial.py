"""Initial schema: the CRM store of SPEC section 1, the tracking and routing state, and the search index.

Revision ID: 0001
Revises:
Create Date: 2026-12-02

Rendered from the models by Alembic's autogenerate (the expression indexes on ``lower(...)``, which
autogenerate cannot reflect on SQLite, written out as ``sa.text``), then the search index
(``store/search_index.py``: SQLite FTS5 trigram tables with their triggers, or PostgreSQL pg_trgm GIN
indexes). ``tests/unit/store/test_schema.py`` checks that these migrations build exactly the models: a model
change needs a new revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('businessunit',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_businessunit_parent_id'), 'businessunit', ['parent_id'], unique=False)
    op.create_table('mailarrival',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_mailarrival_window', 'mailarrival', ['mailbox', 'sender', 'arrived_at'], unique=False)
    op.create_table('mailboxstate',
    sa.Column('name', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('owner_type', sa.String(length=32), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('messages_tracked', sa.Integer(), nullable=False),
    sa.Column('lease_holder', sa.String(length=128), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('setting',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('untracked',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=True),
    sa.Column('external_id', sa.String(length=1024), nullable=True),
    sa.Column('owner_type', sa.String(length=32), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.String(length=800), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_untracked_at', 'untracked', ['recorded_at'], unique=False)
    op.create_table('equipment',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('emailaddress', sa.String(length=320), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('site', sa.String(length=160), nullable=True),
    sa.Column('business_unit_id', sa.String(length=36), nullable=False),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['business_unit_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_equipment_business_unit_id'), 'equipment', ['business_unit_id'], unique=False)
    op.create_table('queue',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('emailaddress', sa.String(length=320), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('business_unit_id', sa.String(length=36), nullable=False),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tracking_option', sa.String(length=16), nullable=False),
    sa.Column('incoming_method', sa.String(length=16), nullable=False),
    sa.Column('outgoing_method', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['business_unit_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_queue_business_unit_id'), 'queue', ['business_unit_id'], unique=False)
    op.create_table('role',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('business_unit_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['business_unit_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('systemuser',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('domainname', sa.String(length=256), nullable=False),
    sa.Column('firstname', sa.String(length=64), nullable=True),
    sa.Column('middlename', sa.String(length=64), nullable=True),
    sa.Column('lastname', sa.String(length=64), nullable=True),
    sa.Column('fullname', sa.String(length=200), nullable=True),
    sa.Column('nickname', sa.String(length=64), nullable=True),
    sa.Column('title', sa.String(length=128), nullable=True),
    sa.Column('jobtitle', sa.String(length=128), nullable=True),
    sa.Column('department', sa.String(length=128), nullable=True),
    sa.Column('internalemailaddress', sa.String(length=320), nullable=True),
    sa.Column('personalemailaddress', sa.String(length=320), nullable=True),
    sa.Column('address1_telephone1', sa.String(length=64), nullable=True),
    sa.Column('mobilephone', sa.String(length=64), nullable=True),
    sa.Column('homephone', sa.String(length=64), nullable=True),
    sa.Column('address1_fax', sa.String(length=64), nullable=True),
    sa.Column('address1_line1', sa.String(length=250), nullable=True),
    sa.Column('address1_city', sa.String(length=80), nullable=True),
    sa.Column('address1_stateorprovince', sa.String(length=50), nullable=True),
    sa.Column('address1_postalcode', sa.String(length=20), nullable=True),
    sa.Column('address1_country', sa.String(length=80), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('business_unit_id', sa.String(length=36), nullable=False),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('address_book_matching', sa.String(length=16), nullable=False),
    sa.Column('local_filter_scope', sa.String(length=16), nullable=False),
    sa.Column('local_filter_ldap', sa.Text(), nullable=True),
    sa.Column('local_filter_include_inactive', sa.Boolean(), nullable=False),
    sa.Column('tracking_number', sa.Integer(), nullable=True),
    sa.Column('token_counter', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tracking_option', sa.String(length=16), nullable=False),
    sa.Column('incoming_method', sa.String(length=16), nullable=False),
    sa.Column('outgoing_method', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['business_unit_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tracking_number')
    )
    op.create_index(op.f('ix_systemuser_business_unit_id'), 'systemuser', ['business_unit_id'], unique=False)
    op.create_table('account',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('accountnumber', sa.String(length=20), nullable=True),
    sa.Column('parentaccount_id', sa.String(length=36), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('owningbusinessunit_id', sa.String(length=36), nullable=False),
    sa.Column('emailaddress1', sa.String(length=320), nullable=True),
    sa.Column('emailaddress2', sa.String(length=320), nullable=True),
    sa.Column('emailaddress3', sa.String(length=320), nullable=True),
    sa.Column('telephone1', sa.String(length=64), nullable=True),
    sa.Column('telephone2', sa.String(length=64), nullable=True),
    sa.Column('telephone3', sa.String(length=64), nullable=True),
    sa.Column('fax', sa.String(length=64), nullable=True),
    sa.Column('websiteurl', sa.String(length=200), nullable=True),
    sa.Column('address1_line1', sa.String(length=250), nullable=True),
    sa.Column('address1_line2', sa.String(length=250), nullable=True),
    sa.Column('address1_line3', sa.String(length=250), nullable=True),
    sa.Column('address1_city', sa.String(length=80), nullable=True),
    sa.Column('address1_stateorprovince', sa.String(length=50), nullable=True),
    sa.Column('address1_postalcode', sa.String(length=20), nullable=True),
    sa.Column('address1_country', sa.String(length=80), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['systemuser.id'], ),
    sa.ForeignKeyConstraint(['owningbusinessunit_id'], ['businessunit.id'], ),
    sa.ForeignKeyConstraint(['parentaccount_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_account_owner_id'), 'account', ['owner_id'], unique=False)
    op.create_index(op.f('ix_account_owningbusinessunit_id'), 'account', ['owningbusinessunit_id'], unique=False)
    op.create_table('activity',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('activitytypecode', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('owningbusinessunit_id', sa.String(length=36), nullable=True),
    sa.Column('subject', sa.String(length=800), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('statuscode', sa.Integer(), nullable=False),
    sa.Column('prioritycode', sa.Integer(), nullable=False),
    sa.Column('regarding_type', sa.String(length=32), nullable=True),
    sa.Column('regarding_id', sa.String(length=36), nullable=True),
    sa.Column('scheduledstart', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scheduledend', sa.DateTime(timezone=True), nullable=True),
    sa.Column('actualstart', sa.DateTime(timezone=True), nullable=True),
    sa.Column('actualend', sa.DateTime(timezone=True), nullable=True),
    sa.Column('location', sa.String(length=200), nullable=True),
    sa.Column('alldayevent', sa.Boolean(), nullable=False),
    sa.Column('percentcomplete', sa.Integer(), nullable=True),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['systemuser.id'], ),
    sa.ForeignKeyConstraint(['owningbusinessunit_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_activity_activitytypecode'), 'activity', ['activitytypecode'], unique=False)
    op.create_index(op.f('ix_activity_owner_id'), 'activity', ['owner_id'], unique=False)
    op.create_index('ix_activity_regarding', 'activity', ['regarding_type', 'regarding_id'], unique=False)
    op.create_table('lead',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('salutation', sa.String(length=100), nullable=True),
    sa.Column('firstname', sa.String(length=64), nullable=True),
    sa.Column('middlename', sa.String(length=64), nullable=True),
    sa.Column('lastname', sa.String(length=64), nullable=True),
    sa.Column('fullname', sa.String(length=200), nullable=True),
    sa.Column('companyname', sa.String(length=100), nullable=True),
    sa.Column('jobtitle', sa.String(length=128), nullable=True),
    sa.Column('mobilephone', sa.String(length=64), nullable=True),
    sa.Column('pager', sa.String(length=64), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('owningbusinessunit_id', sa.String(length=36), nullable=False),
    sa.Column('emailaddress1', sa.String(length=320), nullable=True),
    sa.Column('emailaddress2', sa.String(length=320), nullable=True),
    sa.Column('emailaddress3', sa.String(length=320), nullable=True),
    sa.Column('telephone1', sa.String(length=64), nullable=True),
    sa.Column('telephone2', sa.String(length=64), nullable=True),
    sa.Column('telephone3', sa.String(length=64), nullable=True),
    sa.Column('fax', sa.String(length=64), nullable=True),
    sa.Column('websiteurl', sa.String(length=200), nullable=True),
    sa.Column('address1_line1', sa.String(length=250), nullable=True),
    sa.Column('address1_line2', sa.String(length=250), nullable=True),
    sa.Column('address1_line3', sa.String(length=250), nullable=True),
    sa.Column('address1_city', sa.String(length=80), nullable=True),
    sa.Column('address1_stateorprovince', sa.String(length=50), nullable=True),
    sa.Column('address1_postalcode', sa.String(length=20), nullable=True),
    sa.Column('address1_country', sa.String(length=80), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['systemuser.id'], ),
    sa.ForeignKeyConstraint(['owningbusinessunit_id'], ['businessunit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_lead_owner_id'), 'lead', ['owner_id'], unique=False)
    op.create_index(op.f('ix_lead_owningbusinessunit_id'), 'lead', ['owningbusinessunit_id'], unique=False)
    op.create_table('roleprivilege',
    sa.Column('role_id', sa.String(length=36), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('read_depth', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['role.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role_id', 'entity')
    )
    op.create_table('synclink',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('systemuser_id', sa.String(length=36), nullable=False),
    sa.Column('crm_type', sa.String(length=32), nullable=False),
    sa.Column('crm_id', sa.String(length=36), nullable=False),
    sa.Column('exchange_id', sa.String(length=512), nullable=False),
    sa.Column('change_key', sa.String(length=512), nullable=True),
    sa.Column('crm_hash', sa.String(length=64), nullable=True),
    sa.Column('exchange_hash', sa.String(length=64), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['systemuser_id'], ['systemuser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('systemuser_id', 'crm_type', 'crm_id', name='uq_synclink_crm'),
    sa.UniqueConstraint('systemuser_id', 'exchange_id', name='uq_synclink_exchange')
    )
    op.create_index(op.f('ix_synclink_systemuser_id'), 'synclink', ['systemuser_id'], unique=False)
    op.create_table('systemuserroles',
    sa.Column('systemuser_id', sa.String(length=36), nullable=False),
    sa.Column('role_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['role.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['systemuser_id'], ['systemuser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('systemuser_id', 'role_id')
    )
    op.create_table('activityparty',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('participationtypemask', sa.Integer(), nullable=False),
    sa.Column('party_type', sa.String(length=32), nullable=True),
    sa.Column('party_id', sa.String(length=36), nullable=True),
    sa.Column('addressused', sa.String(length=320), nullable=True),
    sa.Column('display_name', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_activityparty_activity_id'), 'activityparty', ['activity_id'], unique=False)
    op.create_index('ix_activityparty_party', 'activityparty', ['party_type', 'party_id'], unique=False)
    op.create_table('contact',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('salutation', sa.String(length=100), nullable=True),
    sa.Column('firstname', sa.String(length=64), nullable=True),
    sa.Column('middlename', sa.String(length=64), nullable=True),
    sa.Column('lastname', sa.String(length=64), nullable=True),
    sa.Column('fullname', sa.String(length=200), nullable=True),
    sa.Column('nickname', sa.String(length=64), nullable=True),
    sa.Column('jobtitle', sa.String(length=128), nullable=True),
    sa.Column('department', sa.String(length=128), nullable=True),
    sa.Column('mobilephone', sa.String(length=64), nullable=True),
    sa.Column('pager', sa.String(length=64), nullable=True),
    sa.Column('parentcustomer_id', sa.String(length=36), nullable=True),
    sa.Column('source_dn', sa.String(length=1024), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('owningbusinessunit_id', sa.String(length=36), nullable=False),
    sa.Column('emailaddress1', sa.String(length=320), nullable=True),
    sa.Column('emailaddress2', sa.String(length=320), nullable=True),
    sa.Column('emailaddress3', sa.String(length=320), nullable=True),
    sa.Column('telephone1', sa.String(length=64), nullable=True),
    sa.Column('telephone2', sa.String(length=64), nullable=True),
    sa.Column('telephone3', sa.String(length=64), nullable=True),
    sa.Column('fax', sa.String(length=64), nullable=True),
    sa.Column('websiteurl', sa.String(length=200), nullable=True),
    sa.Column('address1_line1', sa.String(length=250), nullable=True),
    sa.Column('address1_line2', sa.String(length=250), nullable=True),
    sa.Column('address1_line3', sa.String(length=250), nullable=True),
    sa.Column('address1_city', sa.String(length=80), nullable=True),
    sa.Column('address1_stateorprovince', sa.String(length=50), nullable=True),
    sa.Column('address1_postalcode', sa.String(length=20), nullable=True),
    sa.Column('address1_country', sa.String(length=80), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('statecode', sa.Integer(), nullable=False),
    sa.Column('createdon', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modifiedon', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['systemuser.id'], ),
    sa.ForeignKeyConstraint(['owningbusinessunit_id'], ['businessunit.id'], ),
    sa.ForeignKeyConstraint(['parentcustomer_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_contact_owner_id'), 'contact', ['owner_id'], unique=False)
    op.create_index(op.f('ix_contact_owningbusinessunit_id'), 'contact', ['owningbusinessunit_id'], unique=False)
    op.create_index(op.f('ix_contact_parentcustomer_id'), 'contact', ['parentcustomer_id'], unique=False)
    op.create_index(op.f('ix_contact_source_dn'), 'contact', ['source_dn'], unique=False)
    op.create_table('email',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('message_key', sa.String(length=128), nullable=True),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('in_reply_to', sa.Text(), nullable=True),
    sa.Column('references', sa.Text(), nullable=True),
    sa.Column('tracking_token', sa.String(length=64), nullable=True),
    sa.Column('directioncode', sa.Boolean(), nullable=False),
    sa.Column('correlation_method', sa.String(length=32), nullable=True),
    sa.Column('accepting_type', sa.String(length=32), nullable=True),
    sa.Column('accepting_id', sa.String(length=36), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('mimetype', sa.String(length=128), nullable=True),
    sa.Column('body_text', sa.Text(), nullable=True),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('statuscode_cache', sa.Integer(), nullable=False),
    sa.Column('delivery_attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id'),
    sa.UniqueConstraint('message_key', name='uq_email_message_key')
    )
    op.create_index('ix_email_message_id', 'email', ['message_id'], unique=False)
    op.create_index('ix_email_status_owner', 'email', ['statuscode_cache', 'activity_id'], unique=False)
    op.create_index(op.f('ix_email_tracking_token'), 'email', ['tracking_token'], unique=False)
    op.create_table('attachment',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('email_id', sa.String(length=36), nullable=False),
    sa.Column('part', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=500), nullable=True),
    sa.Column('mimetype', sa.String(length=256), nullable=True),
    sa.Column('content_id', sa.String(length=500), nullable=True),
    sa.Column('filesize', sa.Integer(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['email.activity_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_attachment_email_id'), 'attachment', ['email_id'], unique=False)
    op.create_table('emailsighting',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('email_id', sa.String(length=36), nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('external_id', sa.String(length=1024), nullable=True),
    sa.Column('arrival', sa.String(length=16), nullable=False),
    sa.Column('marked', sa.Boolean(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['email.activity_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email_id', 'mailbox', name='uq_sighting_email_mailbox')
    )
    op.create_index(op.f('ix_emailsighting_email_id'), 'emailsighting', ['email_id'], unique=False)
    op.create_index('ix_equipment_emailaddress_lower', 'equipment', [sa.text('lower(emailaddress)')], unique=False)
    op.create_index('ix_queue_emailaddress_lower', 'queue', [sa.text('lower(emailaddress)')], unique=False)
    op.create_index('ix_systemuser_domainname_lower', 'systemuser', [sa.text('lower(domainname)')], unique=True)
    op.create_index('ix_systemuser_internalemailaddress_lower', 'systemuser', [sa.text('lower(internalemailaddress)')], unique=False)
    op.create_index('ix_systemuser_personalemailaddress_lower', 'systemuser', [sa.text('lower(personalemailaddress)')], unique=False)
    op.create_index('ix_account_emailaddress1_lower', 'account', [sa.text('lower(emailaddress1)')], unique=False)
    op.create_index('ix_account_emailaddress2_lower', 'account', [sa.text('lower(emailaddress2)')], unique=False)
    op.create_index('ix_account_emailaddress3_lower', 'account', [sa.text('lower(emailaddress3)')], unique=False)
    op.create_index('ix_lead_emailaddress1_lower', 'lead', [sa.text('lower(emailaddress1)')], unique=False)
    op.create_index('ix_lead_emailaddress2_lower', 'lead', [sa.text('lower(emailaddress2)')], unique=False)
    op.create_index('ix_lead_emailaddress3_lower', 'lead', [sa.text('lower(emailaddress3)')], unique=False)
    op.create_index('ix_activityparty_address_lower', 'activityparty', [sa.text('lower(addressused)')], unique=False)
    op.create_index('ix_contact_emailaddress1_lower', 'contact', [sa.text('lower(emailaddress1)')], unique=False)
    op.create_index('ix_contact_emailaddress2_lower', 'contact', [sa.text('lower(emailaddress2)')], unique=False)
    op.create_index('ix_contact_emailaddress3_lower', 'contact', [sa.text('lower(emailaddress3)')], unique=False)

    from abook.store import search_index

    search_index.install(op.get_bind())


def downgrade() -> None:
    from abook.store import search_index
    from abook.store.models import Base

    bind = op.get_bind()
    search_index.uninstall(bind)
    present = set(sa.inspect(bind).get_table_names())
    for table in reversed(Base.metadata.sorted_tables):  # later revisions' tables are gone by now
        if table.name in present:
            op.drop_table(table.name)
