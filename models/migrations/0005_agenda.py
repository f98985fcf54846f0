from tortoise import migrations
from tortoise.migrations import operations as ops
from models.agenda import Attendance, BuiltinCategory
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_client_file')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Location',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='locations', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=120)),
                ('address', fields.CharField(default='', max_length=300)),
                ('is_active', fields.BooleanField(default=True)),
            ],
            options={'table': 'location', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='ServiceCategory',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='service_categories', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=100)),
                ('builtin', fields.CharEnumField(null=True, description='TELECONSULTATION: teleconsultation\nHOME_VISIT: home_visit\nGROUP: group', enum_type=BuiltinCategory, max_length=20)),
                ('color', fields.CharField(default='#2563eb', max_length=7)),
            ],
            options={'table': 'service_category', 'app': 'models', 'unique_together': (('practice', 'builtin'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Service',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='services', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=120)),
                ('duration_minutes', fields.SmallIntField()),
                ('price', fields.DecimalField(max_digits=10, decimal_places=2)),
                ('category', fields.ForeignKeyField('models.ServiceCategory', source_field='category_id', null=True, db_constraint=True, to_field='id', related_name='services', on_delete=OnDelete.SET_NULL)),
                ('is_active', fields.BooleanField(default=True)),
            ],
            options={'table': 'service', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Appointment',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('practitioner', fields.ForeignKeyField('models.StaffUser', source_field='practitioner_id', db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('service', fields.ForeignKeyField('models.Service', source_field='service_id', db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('location', fields.ForeignKeyField('models.Location', source_field='location_id', null=True, db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('starts_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attendance', fields.CharEnumField(default=Attendance.SCHEDULED, description='SCHEDULED: scheduled\nATTENDED: attended\nCANCELLED_BY_CLIENT: cancelled_by_client\nCANCELLED_BY_PRACTITIONER: cancelled_by_practitioner\nNO_SHOW: no_show\nMOVED: moved', enum_type=Attendance, max_length=30)),
                ('is_group', fields.BooleanField(default=False)),
                ('video_room', fields.CharField(default='', max_length=64)),
                ('created_by', fields.ForeignKeyField('models.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='appointments_created', on_delete=OnDelete.SET_NULL)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'appointment', 'app': 'models', 'indexes': [Index(fields=['practitioner_id', 'starts_at'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Availability',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practitioner', fields.ForeignKeyField('models.StaffUser', source_field='practitioner_id', db_constraint=True, to_field='id', related_name='availabilities', on_delete=OnDelete.RESTRICT)),
                ('location', fields.ForeignKeyField('models.Location', source_field='location_id', null=True, db_constraint=True, to_field='id', related_name='availabilities', on_delete=OnDelete.RESTRICT)),
                ('weekday', fields.SmallIntField(null=True)),
                ('on_date', fields.DateField(null=True)),
                ('start_minute', fields.SmallIntField()),
                ('end_minute', fields.SmallIntField()),
                ('valid_from', fields.DateField(null=True)),
                ('valid_until', fields.DateField(null=True)),
                ('services', fields.ManyToManyField('models.Service', unique=True, db_constraint=True, through='availability_service', forward_key='service_id', backward_key='availability_id', related_name='availabilities', on_delete=OnDelete.CASCADE)),
                ('is_group_slot', fields.BooleanField(default=False)),
                ('capacity', fields.SmallIntField(default=1)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'availability', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='TimeOff',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practitioner', fields.ForeignKeyField('models.StaffUser', source_field='practitioner_id', db_constraint=True, to_field='id', related_name='time_off', on_delete=OnDelete.RESTRICT)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reason', fields.CharField(default='', max_length=200)),
            ],
            options={'table': 'time_off', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
    ]
