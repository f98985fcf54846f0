from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0016_offer_sms')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FormSchedule',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='form_schedules', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='form_schedules', on_delete=OnDelete.RESTRICT)),
                ('template', fields.ForeignKeyField('models.FormTemplate', source_field='template_id', db_constraint=True, to_field='id', related_name='schedules', on_delete=OnDelete.RESTRICT)),
                ('every_weeks', fields.SmallIntField(null=True)),
                ('next_due_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('hours_before', fields.SmallIntField(null=True)),
                ('created_by', fields.ForeignKeyField('models.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='form_schedules', on_delete=OnDelete.SET_NULL)),
                ('stopped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'form_schedule', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.AddField(
            model_name='Document',
            name='clinical',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='FormAssignment',
            name='appointment',
            field=fields.ForeignKeyField('models.Appointment', source_field='appointment_id', null=True, db_constraint=True, to_field='id', related_name='form_assignments', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='FormAssignment',
            name='schedule',
            field=fields.ForeignKeyField('models.FormSchedule', source_field='schedule_id', null=True, db_constraint=True, to_field='id', related_name='assignments', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddConstraint(
            model_name='FormAssignment',
            constraint=UniqueConstraint(fields=('schedule', 'appointment'), name=None),
        ),
        # The PDFs of forms submitted before the flag existed hold the client's answers.
        ops.RunSQL(
            "UPDATE document SET clinical = TRUE WHERE id IN "
            "(SELECT document_id FROM form_assignment WHERE document_id IS NOT NULL)",
            reverse_sql="SELECT 1",
        ),
    ]
