from tortoise import migrations
from tortoise.migrations import operations as ops
from models.notifications import OutboxStatus
from models.reminders import Channel
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0011_jobs')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MessagingSettings',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.OneToOneField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='messaging_settings', on_delete=OnDelete.RESTRICT)),
                ('sms_credits', fields.IntField(default=100)),
                ('credits_exhausted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('quiet_start_minute', fields.SmallIntField(default=1260)),
                ('quiet_end_minute', fields.SmallIntField(default=480)),
                ('confirmation_delay_minutes', fields.SmallIntField(default=5)),
                ('sms_on_online_booking', fields.BooleanField(default=False)),
                ('unread_notice_minutes', fields.SmallIntField(default=60)),
            ],
            options={'table': 'messaging_settings', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='ReminderTemplate',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='reminder_templates', on_delete=OnDelete.RESTRICT)),
                ('channel', fields.CharEnumField(description='EMAIL: email\nSMS: sms', enum_type=Channel, max_length=10)),
                ('locale', fields.CharField(max_length=8)),
                ('subject', fields.CharField(default='', max_length=200)),
                ('body', fields.TextField(unique=False)),
            ],
            options={'table': 'reminder_template', 'app': 'models', 'unique_together': (('practice', 'channel', 'locale'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='SmsTemplate',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='sms_templates', on_delete=OnDelete.RESTRICT)),
                ('title', fields.CharField(max_length=100)),
                ('description', fields.CharField(default='', max_length=300)),
                ('sender_name', fields.CharField(default='', max_length=11)),
                ('body', fields.TextField(unique=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_template', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='PractitionerSms',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practitioner', fields.OneToOneField('models.StaffUser', source_field='practitioner_id', db_constraint=True, to_field='id', related_name='sms_preferences', on_delete=OnDelete.RESTRICT)),
                ('default_template', fields.ForeignKeyField('models.SmsTemplate', source_field='default_template_id', null=True, db_constraint=True, to_field='id', related_name='+', on_delete=OnDelete.SET_NULL)),
                ('mobile', fields.CharField(default='', max_length=40)),
                ('notify_online_bookings', fields.BooleanField(default=False)),
                ('notices_by_sms', fields.BooleanField(default=False)),
            ],
            options={'table': 'practitioner_sms', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='status',
            field=fields.CharEnumField(default=OutboxStatus.QUEUED, description='QUEUED: queued\nSENT: sent\nDELIVERED: delivered\nFAILED: failed', enum_type=OutboxStatus, max_length=10),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='delivered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='provider_ref',
            field=fields.CharField(default='', db_index=True, db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='segments',
            field=fields.SmallIntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='sender',
            field=fields.CharField(default='', db_default='', max_length=20),
        ),
    ]
