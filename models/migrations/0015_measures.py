from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.forms import FormPurpose, FormStatus
from models.measures import AdministrationStatus, MeasureKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0014_billing')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FormTemplate',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='form_templates', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=200)),
                ('purpose', fields.CharEnumField(default=FormPurpose.OTHER, description='INTAKE: intake\nCONSENT: consent\nOTHER: other', enum_type=FormPurpose, max_length=10)),
                ('created_by', fields.ForeignKeyField('models.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='form_templates', on_delete=OnDelete.SET_NULL)),
                ('archived_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'form_template', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='FormVersion',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('template', fields.ForeignKeyField('models.FormTemplate', source_field='template_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.RESTRICT)),
                ('number', fields.SmallIntField()),
                ('fields_spec', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.ForeignKeyField('models.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='form_versions', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'form_version', 'app': 'models', 'unique_together': (('template', 'number'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='FormAssignment',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='form_assignments', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='form_assignments', on_delete=OnDelete.RESTRICT)),
                ('version', fields.ForeignKeyField('models.FormVersion', source_field='version_id', db_constraint=True, to_field='id', related_name='assignments', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=FormStatus.SENT, description='SENT: sent\nCOMPLETED: completed\nCANCELLED: cancelled', enum_type=FormStatus, max_length=12)),
                ('sent_by', fields.ForeignKeyField('models.StaffUser', source_field='sent_by_id', null=True, db_constraint=True, to_field='id', related_name='forms_sent', on_delete=OnDelete.SET_NULL)),
                ('draft', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('draft_saved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('answers', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('document', fields.ForeignKeyField('models.Document', source_field='document_id', null=True, db_constraint=True, to_field='id', related_name='form_assignments', on_delete=OnDelete.RESTRICT)),
                ('reminded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'form_assignment', 'app': 'models', 'indexes': [Index(fields=['client_id', 'status'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='MeasureSchedule',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='measure_schedules', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='measure_schedules', on_delete=OnDelete.RESTRICT)),
                ('measure', fields.CharEnumField(description='PHQ9: phq9\nGAD7: gad7', enum_type=MeasureKind, max_length=10)),
                ('every_weeks', fields.SmallIntField(null=True)),
                ('next_due_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('hours_before', fields.SmallIntField(null=True)),
                ('created_by', fields.ForeignKeyField('models.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='measure_schedules', on_delete=OnDelete.SET_NULL)),
                ('stopped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'measure_schedule', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='MeasureAdministration',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='measure_administrations', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='measure_administrations', on_delete=OnDelete.RESTRICT)),
                ('measure', fields.CharEnumField(description='PHQ9: phq9\nGAD7: gad7', enum_type=MeasureKind, max_length=10)),
                ('status', fields.CharEnumField(default=AdministrationStatus.SENT, description='SENT: sent\nCOMPLETED: completed\nCANCELLED: cancelled', enum_type=AdministrationStatus, max_length=12)),
                ('sent_by', fields.ForeignKeyField('models.StaffUser', source_field='sent_by_id', null=True, db_constraint=True, to_field='id', related_name='measures_sent', on_delete=OnDelete.SET_NULL)),
                ('schedule', fields.ForeignKeyField('models.MeasureSchedule', source_field='schedule_id', null=True, db_constraint=True, to_field='id', related_name='administrations', on_delete=OnDelete.RESTRICT)),
                ('appointment', fields.ForeignKeyField('models.Appointment', source_field='appointment_id', null=True, db_constraint=True, to_field='id', related_name='measure_administrations', on_delete=OnDelete.RESTRICT)),
                ('answers', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('score', fields.SmallIntField(null=True)),
                ('band', fields.CharField(default='', max_length=30)),
                ('safety_alert', fields.BooleanField(default=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('filled_by', fields.ForeignKeyField('models.StaffUser', source_field='filled_by_id', null=True, db_constraint=True, to_field='id', related_name='measures_filled', on_delete=OnDelete.SET_NULL)),
                ('reminded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'measure_administration', 'app': 'models', 'unique_together': (('schedule', 'appointment'),), 'indexes': [Index(fields=['client_id', 'measure', 'completed_at'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.AddField(
            model_name='Practice',
            name='clients_see_measure_trend',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='Practice',
            name='crisis_message',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
    ]
