from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.notes import NoteTemplate
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_booking_and_feeds')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SessionNote',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('appointment', fields.OneToOneField('models.Appointment', source_field='appointment_id', db_constraint=True, to_field='id', related_name='note', on_delete=OnDelete.RESTRICT)),
                ('author', fields.ForeignKeyField('models.StaffUser', source_field='author_id', db_constraint=True, to_field='id', related_name='notes', on_delete=OnDelete.RESTRICT)),
                ('template', fields.CharEnumField(description='BLANK: blank\nSOAP: soap\nDAP: dap', enum_type=NoteTemplate, max_length=10)),
                ('sections', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('signed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cosigned_by', fields.ForeignKeyField('models.StaffUser', source_field='cosigned_by_id', null=True, db_constraint=True, to_field='id', related_name='cosigned_notes', on_delete=OnDelete.RESTRICT)),
                ('cosigned_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'session_note', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='NoteAddendum',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('note', fields.ForeignKeyField('models.SessionNote', source_field='note_id', db_constraint=True, to_field='id', related_name='addenda', on_delete=OnDelete.RESTRICT)),
                ('author', fields.ForeignKeyField('models.StaffUser', source_field='author_id', db_constraint=True, to_field='id', related_name='addenda', on_delete=OnDelete.RESTRICT)),
                ('text', fields.TextField(unique=False)),
            ],
            options={'table': 'note_addendum', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
    ]
