from tortoise import migrations
from tortoise.migrations import operations as ops
from models.clients import Relationship
from models.messaging import ConversationKind, ParticipantRole
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Conversation',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='CLIENT: client\nOFFICE: office', enum_type=ConversationKind, max_length=10)),
                ('subject', fields.CharField(max_length=200)),
                ('group_name', fields.CharField(null=True, max_length=120)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', null=True, db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.RESTRICT)),
                ('created_by', fields.ForeignKeyField('models.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='+', on_delete=OnDelete.SET_NULL)),
                ('last_activity_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('awaiting_staff', fields.BooleanField(default=False)),
            ],
            options={'table': 'conversation', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='LinkedAccount',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='links', on_delete=OnDelete.RESTRICT)),
                ('linked_client', fields.ForeignKeyField('models.Client', source_field='linked_client_id', db_constraint=True, to_field='id', related_name='linked_from', on_delete=OnDelete.RESTRICT)),
                ('relationship', fields.CharEnumField(description='PARENT: parent\nCHILD: child\nSPOUSE: spouse\nSIBLING: sibling\nGUARDIAN: guardian\nWARD: ward\nOTHER: other', enum_type=Relationship, max_length=10)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'linked_account', 'app': 'models', 'unique_together': (('client', 'linked_client'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Participant',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='participants', on_delete=OnDelete.RESTRICT)),
                ('role', fields.CharEnumField(description='STAFF: staff\nCLIENT: client\nLINKED: linked', enum_type=ParticipantRole, max_length=10)),
                ('staff_user', fields.ForeignKeyField('models.StaffUser', source_field='staff_user_id', null=True, db_constraint=True, to_field='id', related_name='participations', on_delete=OnDelete.RESTRICT)),
                ('portal_account', fields.ForeignKeyField('models.PortalAccount', source_field='portal_account_id', null=True, db_constraint=True, to_field='id', related_name='participations', on_delete=OnDelete.RESTRICT)),
                ('display_name', fields.CharField(max_length=200)),
                ('added_by_label', fields.CharField(default='', max_length=200)),
            ],
            options={'table': 'conversation_participant', 'app': 'models', 'unique_together': (('conversation', 'staff_user'), ('conversation', 'portal_account')), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.RESTRICT)),
                ('sender', fields.ForeignKeyField('models.Participant', source_field='sender_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.RESTRICT)),
                ('body', fields.TextField(unique=False)),
                ('client_uid', fields.CharField(max_length=64)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'message', 'app': 'models', 'unique_together': (('sender', 'client_uid'),), 'indexes': [Index(fields=['conversation_id', 'id'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='MessageRead',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='reads', on_delete=OnDelete.RESTRICT)),
                ('participant', fields.ForeignKeyField('models.Participant', source_field='participant_id', db_constraint=True, to_field='id', related_name='reads', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'message_read', 'app': 'models', 'unique_together': (('message', 'participant'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
    ]
